from django.apps import AppConfig
from django.conf import settings


class BookingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "bookings"

    def ready(self) -> None:
        import stripe

        import bookings.notifications  # noqa: F401  (connects booking_changed to the emails)
        from bookings import receivers  # noqa: F401  (connects the dj-stripe signals)

        if settings.STRIPE_API_BASE:
            # A local fake (tests, end-to-end runs); dj-stripe's STRIPE_API_HOST would be
            # applied only once at import and warns when DEBUG is off.
            stripe.api_base = settings.STRIPE_API_BASE
