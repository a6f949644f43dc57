"""Interop with the Standard Webhooks reference library, `standardwebhooks.Webhook`, used as a
CRM would use it: what Ahoum signs verifies there, and what it signs verifies here."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from crm import signing
from crm.exceptions import SignatureInvalid
from crm.models import CRMNotification
from crm.tests.conftest import SECRET, SIGNING_SECRET, original_payload

BODY = json.dumps({"booking_id": 15, "note": "Café ☕"}, ensure_ascii=False).encode()


def library_headers(secret: str, webhook_id: str, body: bytes, *, signed_at: int) -> dict:
    signature = Webhook(secret.encode()).sign(
        msg_id=webhook_id, timestamp=datetime.fromtimestamp(signed_at, UTC), data=body.decode()
    )
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(signed_at),
        "webhook-signature": signature,
    }


@pytest.mark.parametrize(
    "library_key",
    [
        SECRET.encode(),  # the raw key as bytes
        base64.b64encode(SECRET.encode()).decode(),  # or as base64 text
        "whsec_" + base64.b64encode(SECRET.encode()).decode(),  # or as a whsec_ secret
    ],
    ids=["bytes", "base64", "whsec"],
)
def test_a_signature_made_by_ahoum_verifies_with_the_reference_library(library_key):
    headers = signing.signed_headers(secret=SECRET, webhook_id="msg_interop", body=BODY)

    assert Webhook(library_key).verify(BODY, headers) == json.loads(BODY)


def test_the_reference_library_refuses_an_ahoum_signature_with_another_key():
    headers = signing.signed_headers(secret=SECRET, webhook_id="msg_interop", body=BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(b"another-secret").verify(BODY, headers)


def test_a_signature_made_by_the_reference_library_verifies_with_ahoum_and_names_its_key():
    headers = library_headers(SIGNING_SECRET, "msg_interop", BODY, signed_at=int(time.time()))

    key = signing.verify(secrets=[SIGNING_SECRET, SECRET], headers=headers, body=BODY)
    bearer_key = signing.verify(secrets=["", SECRET, SIGNING_SECRET], headers=headers, body=BODY)

    assert key == bearer_key == SIGNING_SECRET


def test_a_reference_library_signature_older_than_five_minutes_is_refused_saying_why():
    headers = library_headers(SECRET, "msg_interop", BODY, signed_at=int(time.time()) - 301)

    with pytest.raises(SignatureInvalid, match="webhook-timestamp"):
        signing.verify(secrets=[SECRET], headers=headers, body=BODY)


@pytest.mark.django_db
def test_the_receiver_stores_a_notification_signed_by_the_reference_library(client, crm_secret):
    body = json.dumps(original_payload()).encode()
    headers = library_headers(SECRET, "msg_library", body, signed_at=int(time.time()))

    response = client.generic(
        "POST",
        "/crm/webhook",
        body,
        content_type="application/json",
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    )

    assert response.status_code == 200, response.json()
    assert response.json()["stored"] is True
    notification = CRMNotification.objects.get()
    assert (notification.webhook_id, notification.signed) == ("msg_library", True)
