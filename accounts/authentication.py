"""Bearer-token authentication: simplejwt's, with the user read through a compiled query."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from ahoum.compiled import read_by_pk


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's `JWTAuthentication` with the same checks and errors, one cheaper read.

    Every authenticated request reads its user; the ORM's `get()` spends most of its time
    building and compiling the query, not running it (`ahoum.compiled.read_by_pk`). The user is
    still read on every request, so deactivating someone locks them out at once.
    """

    def get_user(self, validated_token):
        if self.user_model._meta.pk.name != api_settings.USER_ID_FIELD:
            return super().get_user(validated_token)  # only primary-key ids take the fast path
        try:
            user_id = self.user_model._meta.pk.to_python(
                validated_token[api_settings.USER_ID_CLAIM]
            )
        except (KeyError, ValidationError) as error:
            raise InvalidToken(_("Token contained no recognizable user identification")) from error
        user = read_by_pk(self.user_model, user_id)
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                _("The user's password has been changed."), code="password_changed"
            )
        return user
