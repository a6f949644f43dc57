from rest_framework.routers import SimpleRouter

from events.views import EventViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # `/events` and `/events/` both work, for every method
router.register("events", EventViewSet, basename="event")

urlpatterns = router.urls
