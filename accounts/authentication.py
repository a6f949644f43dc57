"""JWT authentication that reads the signed-in user from the shared cache.

simplejwt verifies the token's signature in memory (about 0.07 ms) and then loads the user
row, a query and a model instance on every request: most of the cost of authenticating
(bench/README.md). Here the row's public fields are kept in the shared cache and the user is
rebuilt from them with Django's `Model.from_db` (any other field, such as the password hash,
which is never cached, loads on first access).

Never staler than the database: every save or delete of a user drops its entry at once and
again when the transaction commits (a reader between the two cannot keep the old row), and
an entry lives at most AUTH_USER_CACHE_SECONDS. Like the catalogue cache, it needs a cache
every process shares, so it is off (0) without REDIS_URL.
"""

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings

from accounts.models import User

# In the model's field order, as Model.from_db() expects a subset of fields to come.
CACHED_FIELDS = [
    field.attname
    for field in User._meta.concrete_fields
    if field.attname
    in {"id", "email", "name", "role", "is_staff", "is_superuser", "is_active", "date_joined"}
]


def _key(user_id) -> str:
    return f"auth-user:{user_id}"


class CachedUserJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):
        seconds = settings.AUTH_USER_CACHE_SECONDS
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        # simplejwt's own path: no cache, a token without a user id, or a check that needs
        # the password hash (never cached).
        if seconds <= 0 or user_id is None or api_settings.CHECK_REVOKE_TOKEN:
            return super().get_user(validated_token)
        values = cache.get(_key(user_id))
        if values is None:
            user = super().get_user(validated_token)  # refuses unknown and inactive users
            cache.set(_key(user_id), [getattr(user, name) for name in CACHED_FIELDS], seconds)
            return user
        user = User.from_db(None, CACHED_FIELDS, values)
        if not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        return user


@receiver(post_save, sender=User, dispatch_uid="accounts.forget_cached_user")
@receiver(post_delete, sender=User, dispatch_uid="accounts.forget_cached_user_deleted")
def forget_cached_user(sender, instance, **kwargs) -> None:
    if settings.AUTH_USER_CACHE_SECONDS <= 0:
        return
    key = _key(instance.pk)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))
