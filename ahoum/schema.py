"""OpenAPI generation: every operation documents the error responses it can return."""

from drf_spectacular import openapi
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticatedOrReadOnly

from ahoum.errors import ErrorSerializer


class JWTScheme(SimpleJWTScheme):
    """`accounts.authentication.JWTAuthentication` is simplejwt's bearer JWT in the schema."""

    target_class = "accounts.authentication.JWTAuthentication"


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        possible = ["400"] if self.method != "DELETE" else []
        if self.view.authentication_classes:
            possible.append("401")  # a bad or expired token is refused even on public reads
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            possible.append("403")
        if "{" in self.path or (self.method == "GET" and self._is_list_view()):
            possible.append("404")  # unknown id, or a page number past the end
        if self.view.get_throttles():
            possible.append("429")
        for code in possible:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    ErrorSerializer, code, direction=direction
                )
        return responses

    def get_auth(self):
        auths = super().get_auth()
        # drf-spectacular compares permission classes exactly; ours subclass DRF's.
        public_read = self.method in SAFE_METHODS and any(
            isinstance(p, IsAuthenticatedOrReadOnly) for p in self.view.get_permissions()
        )
        if public_read and {} not in auths:
            auths.append({})
        return auths
