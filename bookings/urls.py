from django.urls import re_path
from rest_framework.routers import SimpleRouter

from bookings.views import BookingViewSet, CheckoutReturnView

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("bookings", BookingViewSet, basename="booking")

urlpatterns = [
    *router.urls,
    re_path(r"^payments/success/?$", CheckoutReturnView.as_view(outcome="success")),
    re_path(r"^payments/cancelled/?$", CheckoutReturnView.as_view(outcome="cancelled")),
]
