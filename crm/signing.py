"""Standard Webhooks signatures, symmetric scheme `v1` (https://www.standardwebhooks.com/).

Every message carries three headers:

    webhook-id:        the message's id, the same on every retry (`msg_<32 hex digits>`)
    webhook-timestamp: when this attempt was signed, in integer Unix seconds
    webhook-signature: `v1,` + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}"))

`body` is the exact bytes sent. The key is the secret's UTF-8 bytes as configured
(CRM_WEBHOOK_SECRET going out; coming in, the receiver's bearer secret or the payment signing
key CRM_INBOUND_SIGNING_SECRET), not a `whsec_`-prefixed base64 secret, because the outbound
one is also the original's bearer token.
The Standard Webhooks libraries accept it as raw bytes
(Python: `standardwebhooks.Webhook(secret.encode())`) or as `base64(secret)`.
"""

import base64
import binascii
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping, Sequence

from crm.exceptions import SignatureInvalid

TOLERANCE_SECONDS = 5 * 60  # how far webhook-timestamp may be from our clock, either way
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def signature(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one message and attempt."""
    return "v1," + base64.b64encode(_digest(secret, webhook_id, timestamp, body)).decode()


def signed_headers(
    *, secret: str, webhook_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body
        ),
    }


def is_signed(headers: Mapping[str, str]) -> bool:
    """The request claims a signature (a `webhook-id` alone is just an idempotency key)."""
    return bool(headers.get("webhook-signature") or headers.get("webhook-timestamp"))


def verify(
    *,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
) -> str:
    """The first of `secrets` that one `v1` signature matches, with a fresh timestamp; raise
    `SignatureInvalid` when none does. Empty secrets are skipped.

    The signature header may list several space-separated signatures (secret rotation); any
    `v1` one that matches is enough. Comparisons are constant-time.
    """
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        raise SignatureInvalid("No webhook secret is configured.")
    webhook_id, timestamp, signatures = (headers.get(name, "") for name in SIGNATURE_HEADERS)
    if not (webhook_id and timestamp and signatures):
        raise SignatureInvalid(
            "A signed webhook needs webhook-id, webhook-timestamp and webhook-signature."
        )
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureInvalid("webhook-timestamp must be integer Unix seconds.")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureInvalid("webhook-timestamp is more than 5 minutes from the server's time.")
    given = []
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    for secret in secrets:
        expected = _digest(secret, webhook_id, int(timestamp), body)
        if any(hmac.compare_digest(digest, expected) for digest in given):
            return secret
    raise SignatureInvalid()


def _digest(secret: str, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), content, hashlib.sha256).digest()
