from rest_framework.routers import SimpleRouter

from bookings.views import BookingViewSet

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("bookings", BookingViewSet, basename="booking")

urlpatterns = router.urls
