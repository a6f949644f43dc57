"""OpenAPI: our JWT authentication is simplejwt's, documented the same way."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class CachedUserJWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.CachedUserJWTAuthentication"
