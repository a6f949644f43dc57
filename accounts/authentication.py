"""Bearer-token authentication: simplejwt's, with a malformed user id refused as a 401."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's `JWTAuthentication`; a user id that is not an id is an invalid token.

    simplejwt looks the user up with the claim as given, and the ORM raises ValueError for
    `"user_id": "abc"`: a 500 without this. The user is read on every request, so
    deactivating someone locks them out at once.
    """

    def get_user(self, validated_token):
        try:
            return super().get_user(validated_token)
        except (ValueError, ValidationError) as error:
            raise InvalidToken(_("Token contained no recognizable user identification")) from error
