"""OpenAPI generation: every operation documents the error responses it can return."""

from drf_spectacular import openapi
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.plumbing import is_list_serializer
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticatedOrReadOnly

from ahoum.errors import ErrorSerializer


class JWTScheme(SimpleJWTScheme):
    """`accounts.authentication.JWTAuthentication` is simplejwt's bearer JWT in the schema."""

    target_class = "accounts.authentication.JWTAuthentication"


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:  # excluded from the schema
            return None
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        for code in possible_errors(
            self.view, self.path, self.method, listing=returns_a_list(self)
        ):
            operation["responses"].setdefault(
                code,
                {
                    "content": {
                        media_type: {"schema": error}
                        for media_type in self.map_renderers("media_type")
                    },
                    "description": "",
                },
            )
        return operation

    def get_auth(self):
        auths = super().get_auth()
        # drf-spectacular compares permission classes exactly; ours subclass DRF's.
        public_read = self.method in SAFE_METHODS and any(
            isinstance(p, IsAuthenticatedOrReadOnly) for p in self.view.get_permissions()
        )
        if public_read and {} not in auths:
            auths.append({})
        return auths


def returns_a_list(schema: AutoSchema) -> bool:
    """Whether the operation answers a list (of a `many=True` serializer or a list action)."""
    serializer = schema.get_response_serializers()
    if isinstance(serializer, dict) and serializer:  # @extend_schema(responses={code: ...})
        serializer = serializer[min(serializer, key=str)]
    if is_list_serializer(serializer):
        return True
    if hasattr(schema.view, "action"):
        return schema.view.action == "list"
    return isinstance(schema.view, ListModelMixin)


def possible_errors(view, path: str, method: str, *, listing: bool) -> list[str]:
    """The error statuses (ahoum.errors' shape) an operation can answer besides its own."""
    possible = ["400"] if method != "DELETE" else []
    if view.authentication_classes:
        possible.append("401")  # a bad or expired token is refused even on public reads
    if not all(isinstance(p, AllowAny) for p in view.get_permissions()):
        possible.append("403")
    if "{" in path or (method == "GET" and listing):
        possible.append("404")  # unknown id, or a page number past the end
    if view.get_throttles():
        possible.append("429")
    return possible
