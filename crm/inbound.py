"""The transport checks of an incoming CRM webhook, before its fields are looked at.

In this order: the body's size (413), the Standard Webhooks signature when one is sent (403),
then JSON (400). The caller was let in by permissions.HasCRMWebhookToken: a matching bearer
token, or signature headers, which must then verify here, with the receiver's bearer secret
(`permissions.inbound_secret`) or the payment signing key (`permissions.payment_signing_secret`).
`signed` means a signature was sent and verified, fresh, with either; `signed_for_payment`
that it was the payment signing key's: the only proof the services accept for marking a
booking paid, because that key never travels (the bearer secret does, in every bearer
request and, by default, in every notification Ahoum sends).
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.request import Request

from ahoum import parsers
from crm import signing
from crm.exceptions import PayloadTooLarge, SignatureInvalid
from crm.permissions import inbound_secret, payment_signing_secret

MAX_WEBHOOK_ID_LENGTH = 255


@dataclass(frozen=True)
class InboundNotification:
    payload: Any  # the parsed JSON, as received
    webhook_id: str
    signed: bool
    signed_for_payment: bool


def read_notification(request: Request) -> InboundNotification:
    """Check and parse a webhook request's body. Raises the error each check answers with."""
    limit = settings.CRM_WEBHOOK_MAX_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    body = request.body
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")

    headers = request.headers
    webhook_id = headers.get("webhook-id", "").strip()
    if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise ValidationError({"webhook-id": [f"At most {MAX_WEBHOOK_ID_LENGTH} characters."]})
    signed = signing.is_signed(headers)
    signed_for_payment = False
    if signed:
        payment_key = payment_signing_secret()
        key = signing.verify(secrets=[payment_key, inbound_secret()], headers=headers, body=body)
        signed_for_payment = bool(payment_key) and key == payment_key
    elif settings.CRM_WEBHOOK_REQUIRE_SIGNATURE:
        raise SignatureInvalid("This receiver accepts signed webhooks only.")
    return InboundNotification(
        payload=_parse_json(body),
        webhook_id=webhook_id,
        signed=signed,
        signed_for_payment=signed_for_payment,
    )


def _parse_json(body: bytes) -> Any:
    payload = parsers.parse_json(body)  # 400 parse_error; nesting bounded, as every endpoint
    _check_storable(payload)
    return payload


def _check_storable(payload: Any) -> None:
    """Refuse text the database cannot store as JSON (NUL, lone surrogates), iteratively."""
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ParseError("The request body contains invalid Unicode.") from error
            if "\x00" in value:
                raise ParseError("The request body contains NUL characters.")
