"""One JSON error shape for every error an API client can get.

    {"code": "<stable machine-readable code>", "detail": "<human message>",
     "fields": {"<field>": ["<message>", ...]}}          # "fields" only on validation errors

Services raise `DomainError` subclasses; DRF's exceptions and Django's 404/500 handlers are
reshaped here, so views never build error bodies themselves.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A business rule refused an operation. Subclasses set `status_code`, `code` and a message."""

    status_code: int = status.HTTP_409_CONFLICT
    code: str = "conflict"
    default_detail: str = "The request conflicts with the current state."
    headers: dict[str, str] | None = None
    field: str | None = None  # the request field at fault, reported under "fields"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class TryAgain(DomainError):
    """A row lock was not granted in time: the client should retry shortly."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "busy"
    default_detail = "The system is busy with this item. Please try again in a moment."
    headers = {"Retry-After": "1"}


class Deadlock(TryAgain):
    """Two transactions waited for each other and the database rolled this one back.

    Nothing of it was written, so trying again is safe; a service that can, does.
    """


class StatementTimeout(TryAgain):
    """A database statement ran past DATABASE_STATEMENT_TIMEOUT_MS and PostgreSQL cancelled it.

    The statement did nothing (its transaction was rolled back); the database is slow or a
    lock is held too long, so trying again a little later may succeed.
    """

    code = "timeout"
    default_detail = "The database took too long to answer. Please try again in a moment."
    headers = {"Retry-After": "5"}


class RequestTimedOut(DomainError):
    """The request ran into the web server's worker timeout and was stopped where it was.

    Raised by gunicorn.conf.py's `worker_abort` hook, so the answer is this JSON 503 instead of
    gunicorn's HTML page. Unlike `StatementTimeout`, parts of the request may have committed.
    """

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "timeout"
    default_detail = (
        "The request took too long and was stopped; part of it may have been done. "
        "Check before repeating it."
    )
    headers = {"Retry-After": "5"}


class ErrorSerializer(serializers.Serializer):
    """The error body, for the OpenAPI schema."""

    code = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Validation messages keyed by the field at fault (400 only).",
    )


def error_body(code: str, detail: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields is not None:
        body["fields"] = fields
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, StatementTimeout):
        # Operators tune DATABASE_STATEMENT_TIMEOUT_MS (or the query) from these lines.
        logger.warning("a database statement ran past the statement timeout and was cancelled")
    if isinstance(exc, DomainError):
        fields = {exc.field: [str(exc.detail)]} if exc.field else None
        body = error_body(exc.code, str(exc.detail), fields)
        body.update(exc.extra)
        return Response(body, status=exc.status_code, headers=exc.headers)

    # DRF converts these itself, but only inside its handler; convert first so the stable
    # `code` below comes from the DRF exception (`not_found`, `permission_denied`).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)

    if isinstance(exc, OperationalError):
        # A statement timeout outside a service's transaction (a list, a read); inside one,
        # service_transaction() already turned it into StatementTimeout. ahoum.db imports
        # this module, hence the import here.
        from ahoum.db import database_timeout

        timeout = database_timeout(exc)
        if timeout is not None:
            return api_exception_handler(timeout, context)

    if isinstance(exc, DjangoValidationError):
        # A model's full_clean() in a service: same answer as a serializer's validation.
        exc = exceptions.ValidationError(serializers.as_serializer_error(exc))

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers (JSON on API paths)

    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", "Invalid input.", fields)
        return response

    detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
    code = getattr(getattr(exc, "detail", None), "code", None)
    if isinstance(getattr(exc, "detail", None), dict):
        # simplejwt's InvalidToken carries {"detail", "code", "messages"}.
        code = exc.detail.get("code", code)
        detail = exc.detail.get("detail", detail)
    response.data = error_body(str(code or getattr(exc, "default_code", "error")), str(detail))
    return response


def _wants_html(request: HttpRequest) -> bool:
    return request.path.startswith(("/admin/", "/backoffice/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if _wants_html(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    if _wants_html(request):
        return defaults.server_error(request)
    return JsonResponse(
        error_body("server_error", "An unexpected error occurred. It has been logged."), status=500
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if _wants_html(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):  # a body over DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse(
            error_body("payload_too_large", "The request body is too large."), status=413
        )
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if _wants_html(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(error_body("permission_denied", "Forbidden."), status=403)
