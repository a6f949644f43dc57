from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class AuthRateThrottle(SimpleRateThrottle):
    """Login and registration attempts per client address (AUTH_THROTTLE_RATE).

    The rate is read at request time (not at import, as DRF's scoped throttle does) so it
    follows the settings. The count lives in the default cache: set REDIS_URL so it holds
    across processes and hosts.
    """

    scope = "auth"

    def get_rate(self) -> str:
        return settings.AUTH_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
