import hmac

from django.conf import settings
from rest_framework.permissions import BasePermission

from crm import signing


def inbound_secret() -> str:
    """The receiver's bearer secret: CRM_INBOUND_SECRET, or CRM_WEBHOOK_SECRET when unset.

    It authenticates a sender (as a bearer token or a signing key), never a payment: it
    travels in bearer requests, and CRM_WEBHOOK_SECRET in every notification Ahoum sends.
    """
    return settings.CRM_INBOUND_SECRET or settings.CRM_WEBHOOK_SECRET


def payment_signing_secret() -> str:
    """CRM_INBOUND_SIGNING_SECRET, the only key whose signature marks a booking paid; empty
    (nothing marks paid) when unset or equal to a secret that travels as a bearer token.

    Settings refuse to start with such a value; this holds for overridden settings too.
    """
    secret = settings.CRM_INBOUND_SIGNING_SECRET
    if secret in {inbound_secret(), settings.CRM_WEBHOOK_SECRET}:
        return ""
    return secret


def bearer_token_matches(authorization: str, secret: str) -> bool:
    """`Authorization: Bearer <secret>`, compared in constant time; no secret, no access."""
    scheme, _, token = authorization.partition(" ")
    if not secret or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), secret.encode())


class HasCRMWebhookToken(BasePermission):
    """The receiver's secret as the bearer token (the original's check), or no Authorization
    header and Standard Webhooks signature headers.

    A signature is verified (`crm.receiver.read_notification`) before the body is parsed, so a
    signer need not send its key with every request. The bearer token alone stores
    notifications for review; only a signature with the payment signing key marks a booking
    paid (`crm.receiver`). No secret, no access.
    """

    message = "Missing or wrong bearer token."
    code = "invalid_webhook_token"

    def has_permission(self, request, view) -> bool:
        secret = inbound_secret()
        authorization = request.headers.get("Authorization")
        if authorization is None:
            signing_keys = secret or payment_signing_secret()
            return bool(signing_keys) and signing.is_signed(request.headers)
        return bearer_token_matches(authorization, secret)
