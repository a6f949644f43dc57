import hmac

from django.conf import settings
from rest_framework.permissions import BasePermission


def bearer_token_matches(authorization: str, secret: str) -> bool:
    """`Authorization: Bearer <secret>`, compared in constant time; no secret, no access."""
    scheme, _, token = authorization.partition(" ")
    if not secret or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), secret.encode())


class HasCRMWebhookToken(BasePermission):
    """The caller sent the shared CRM_WEBHOOK_SECRET as its bearer token (the original's check)."""

    message = "Missing or wrong bearer token."
    code = "invalid_webhook_token"

    def has_permission(self, request, view) -> bool:
        authorization = request.headers.get("Authorization", "")
        return bearer_token_matches(authorization, settings.CRM_WEBHOOK_SECRET)
