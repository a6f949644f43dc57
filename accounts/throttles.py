import math
import time

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import normalize_email


class AuthRateThrottle(SimpleRateThrottle):
    """Login and registration attempts per client address (AUTH_THROTTLE_RATE).

    The rate is read at request time (not at import, as DRF's scoped throttle does) so it
    follows the settings. The count lives in the default cache: set REDIS_URL so it holds
    across processes and hosts. The address is DRF's `get_ident()`: the connection's address,
    or with NUM_PROXIES the one the nearest proxy appended to X-Forwarded-For.
    """

    scope = "auth"

    def get_rate(self) -> str:
        return settings.AUTH_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


# Logins per account, whatever the client address (LOGIN_FAILURE_LIMIT in a window of
# LOGIN_FAILURE_WINDOW_MINUTES). Two cache keys per email: the number of attempts since the
# window opened, and when the window ends (for Retry-After); both expire with the window.
# The counter relies on `incr()` keeping the key's expiry, as the local-memory, Redis and
# Memcached backends do.


def count_login_attempt(*, email: str) -> None:
    """Count a login attempt for `email` before its password is checked; `Throttled` (429)
    once more than LOGIN_FAILURE_LIMIT attempts fell in its window since the last success.

    Counting first (an atomic increment) lets no concurrent attempt slip past the limit. The
    answer depends only on the attempts made for the email: a locked login reads no row
    and hashes no password, so it is the same, in body and in time, for unknown emails.
    """
    window = settings.LOGIN_FAILURE_WINDOW_MINUTES * 60
    attempts_key, ends_key = _login_attempt_keys(email)
    now = time.time()
    if cache.add(attempts_key, 1, timeout=window):
        attempts = 1
    else:
        try:
            attempts = cache.incr(attempts_key)
        except ValueError:  # the window ended between add() and incr(): this one opens a new one
            cache.set(attempts_key, 1, timeout=window)
            attempts = 1
    if attempts == 1:
        cache.set(ends_key, now + window, timeout=window)
    elif attempts > settings.LOGIN_FAILURE_LIMIT:
        ends_at = cache.get(ends_key, now + window)
        raise Throttled(wait=max(1, math.ceil(ends_at - now)))


def clear_login_attempts(*, email: str) -> None:
    """Start `email`'s count over: after a successful login or a password change."""
    cache.delete_many(_login_attempt_keys(email))


def _login_attempt_keys(email: str) -> tuple[str, str]:
    # Keyed (SECRET_KEY) digest of the address as the login reads it: one count for every
    # spelling, a fixed-length key, and no email address stored in the cache.
    digest = salted_hmac("accounts.login-attempts", normalize_email(email), algorithm="sha256")
    return f"login_attempts_{digest.hexdigest()}", f"login_attempts_end_{digest.hexdigest()}"
