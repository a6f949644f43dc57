import json
import time
import uuid

import pytest
import stripe
from django.core.management import call_command
from django.urls import reverse

from fakes.stripe_api import TEST_SECRET_KEY, stripe_signature_header

WEBHOOK_SECRET = "whsec_ahoum_test_secret"


@pytest.fixture
def stripe_on(settings, fake_stripe, monkeypatch):
    """Payments configured, with Stripe played by a fake on 127.0.0.1.

    The stripe library retries 5xx and network errors twice by default; tests that make
    Stripe fail want each failure seen once, so retries are off here.
    """
    settings.STRIPE_SECRET_KEY = TEST_SECRET_KEY
    settings.STRIPE_TEST_SECRET_KEY = TEST_SECRET_KEY
    settings.STRIPE_LIVE_MODE = False
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    return fake_stripe


class StripeWebhooks:
    """Sends Stripe events to dj-stripe's real webhook URL with a real Stripe-Signature."""

    def __init__(self, client, url: str, secret: str) -> None:
        self.client, self.url, self.secret = client, url, secret

    def send(self, event: dict, *, secret: str | None = None, timestamp: int | None = None):
        payload = json.dumps(event).encode()
        signature = stripe_signature_header(
            payload, secret or self.secret, timestamp or int(time.time())
        )
        return self.client.post(
            self.url, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )


@pytest.fixture
def stripe_webhooks(db, settings, stripe_on, client):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_WEBHOOK_UUID = str(uuid.uuid4())
    call_command("setup_stripe_webhook", "--base-url", "http://testserver", verbosity=0)
    url = reverse(
        "djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": settings.STRIPE_WEBHOOK_UUID}
    )
    return StripeWebhooks(client, url, WEBHOOK_SECRET)
