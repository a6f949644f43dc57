from django.urls import re_path
from rest_framework.routers import SimpleRouter

from bookings.views import BookingViewSet, CheckoutReturnView, WaitlistJoinView, WaitlistViewSet

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("bookings", BookingViewSet, basename="booking")
router.register("waitlist", WaitlistViewSet, basename="waitlist")

urlpatterns = [
    *router.urls,
    re_path(
        r"^events/(?P<event_id>[0-9]+)/waitlist/?$",
        WaitlistJoinView.as_view(),
        name="event-waitlist",
    ),
    re_path(r"^payments/success/?$", CheckoutReturnView.as_view(outcome="success")),
    re_path(r"^payments/cancelled/?$", CheckoutReturnView.as_view(outcome="cancelled")),
]
