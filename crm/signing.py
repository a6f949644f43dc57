"""Standard Webhooks signatures, symmetric scheme `v1` (https://www.standardwebhooks.com/),
made and checked with the scheme's reference library, `standardwebhooks`.

Every message carries three headers:

    webhook-id:        the message's id, the same on every retry (`msg_<32 hex digits>`)
    webhook-timestamp: when this attempt was signed, in integer Unix seconds
    webhook-signature: `v1,` + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}"))

`body` is the exact bytes sent. The key is the secret's UTF-8 bytes as configured
(CRM_WEBHOOK_SECRET going out; coming in, the receiver's bearer secret or the payment signing
key CRM_INBOUND_SIGNING_SECRET), not a `whsec_`-prefixed base64 secret, because the outbound
one is also the original's bearer token. The library takes such a key as bytes,
`Webhook(secret.encode())` (a `str` it would decode as base64), and so do we.

Two checks stay here, by hand, in front of the library's `verify`:

- The headers' presence and the timestamp (integer ASCII Unix seconds, as the scheme says,
  within 5 minutes either way). The library raises one `WebhookVerificationError` for a
  missing header, an expired timestamp and a wrong signature alike, told apart only by its
  message text, and its timestamp parser takes `1.7e9` or non-ASCII digits too. Checked here
  first, each problem gets its own 403 message; the library then checks the timestamp again,
  with the same 5 minutes, and compares the signatures.
- Several candidate keys (the payment signing key and the receiver's bearer secret), and which
  one matched: a `Webhook` holds one key, so `verify` tries one per key.
"""

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook, WebhookVerificationError

from crm.exceptions import SignatureInvalid

TOLERANCE_SECONDS = 5 * 60  # the library's fixed tolerance, either way; checked here first
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def signed_headers(
    *, secret: str, webhook_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers of one message's attempt, signed now (or at `timestamp`)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = Webhook(secret.encode()).sign(
        msg_id=webhook_id, timestamp=datetime.fromtimestamp(timestamp, UTC), data=body.decode()
    )
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def is_signed(headers: Mapping[str, str]) -> bool:
    """The request claims a signature (a `webhook-id` alone is just an idempotency key)."""
    return bool(headers.get("webhook-signature") or headers.get("webhook-timestamp"))


def verify(*, secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> str:
    """The first of `secrets` that one `v1` signature matches, with a fresh timestamp; raise
    `SignatureInvalid`, saying why, when none does. Empty secrets are skipped.

    The signature header may list several space-separated signatures (secret rotation); any
    `v1` one that matches is enough. The library compares them in constant time.
    """
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        raise SignatureInvalid("No webhook secret is configured.")
    message = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    if not all(message.values()):
        raise SignatureInvalid(
            "A signed webhook needs webhook-id, webhook-timestamp and webhook-signature."
        )
    timestamp = message["webhook-timestamp"]
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureInvalid("webhook-timestamp must be integer Unix seconds.")
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureInvalid("webhook-timestamp is more than 5 minutes from the server's time.")
    try:
        text = body.decode()
    except UnicodeDecodeError as error:
        raise SignatureInvalid("A signed body must be UTF-8 text.") from error
    for secret in secrets:
        try:
            Webhook(secret.encode()).verify(text, message, json_parse=False)
        except WebhookVerificationError:
            continue
        except ValueError as error:
            # The library parses `webhook-signature` as it compares: an entry without one
            # comma, or with bad base64, raises ValueError (binascii.Error) there.
            raise SignatureInvalid(
                "webhook-signature must be space-separated `v1,<base64>` signatures."
            ) from error
        return secret
    raise SignatureInvalid()
