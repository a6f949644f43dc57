"""Register the Stripe webhook endpoint in dj-stripe's tables from settings (no Stripe API)."""

import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from djstripe.enums import WebhookEndpointStatus
from djstripe.models import WebhookEndpoint


class Command(BaseCommand):
    help = (
        "Create or update the dj-stripe WebhookEndpoint that verifies Stripe's webhooks with "
        "STRIPE_WEBHOOK_SECRET, and print the URL to register in Stripe's dashboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="", help="e.g. https://api.ahoum.example")

    def handle(self, *args, base_url: str, **options):
        secret = settings.STRIPE_WEBHOOK_SECRET
        if not secret:
            self.stdout.write("STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks stay off.")
            return
        if not settings.STRIPE_WEBHOOK_UUID:
            raise CommandError("Set STRIPE_WEBHOOK_UUID (any UUID; it becomes part of the URL).")
        endpoint_uuid = uuid.UUID(settings.STRIPE_WEBHOOK_UUID)
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
        _, created = WebhookEndpoint.objects.update_or_create(
            djstripe_uuid=endpoint_uuid,
            defaults={
                "id": f"ahoum_{endpoint_uuid.hex}",
                "url": f"{base_url.rstrip('/')}{path}",
                "secret": secret,
                "enabled_events": ["*"],
                "status": WebhookEndpointStatus.enabled,
                "livemode": settings.STRIPE_LIVE_MODE,
                "api_version": "",
            },
        )
        verb = "registered" if created else "updated"
        self.stdout.write(f"Stripe webhook endpoint {verb}: {base_url.rstrip('/')}{path}")
