from django.apps import AppConfig
from django.conf import settings


class BookingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "bookings"

    def ready(self) -> None:
        import stripe

        from bookings import receivers  # noqa: F401  (connects the dj-stripe signals)

        # Every Stripe call (Checkout, refunds, dj-stripe's syncs) waits at most this long per
        # try, instead of the library's 80 s: shorter than a request's timeout and a refund's
        # lease (bookings/services/refunds.py).
        stripe.default_http_client = stripe.new_default_http_client(
            timeout=settings.STRIPE_TIMEOUT_SECONDS
        )
        # Retries repeat the same idempotency key; web processes get none (gunicorn.conf.py).
        stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES
        if settings.STRIPE_API_BASE:
            # A local fake (tests, end-to-end runs); dj-stripe's STRIPE_API_HOST would be
            # applied only once at import and warns when DEBUG is off.
            stripe.api_base = settings.STRIPE_API_BASE
