"""JSON request bodies, parsed with a bound on nesting: the one parser of every endpoint.

`json.loads` recurses once per nesting level (in C, guarded by the interpreter's recursion
limit), so a body of `[` x 100,000 ends in `RecursionError` instead of `ValueError` and DRF's
JSONParser lets it through as a 500. No request needs more than a few levels, so a body nested
deeper than MAX_DEPTH is refused before it is parsed, with the 400 `parse_error` every other
malformed body gets. Both DRF (DEFAULT_PARSER_CLASSES) and the CRM receiver, which parses the
signed raw bytes itself, parse through `parse_json`; dj-stripe's webhook view, which parses
bodies its own way, is guarded by `NestingLimitMiddleware`.
"""

import json
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import APIException, ParseError

# Deeper than any payload the API or a CRM sends (those are 2 to 4 levels), far below the
# interpreter's recursion limit (1000).
MAX_DEPTH = 64

# A JSON string (skipped whole, so brackets inside it do not count) or one bracket. The closing
# quote is optional: an unterminated string runs to the end of the text in one match, so the
# scan stays linear (with it required, every unmatched quote rescanned to the end: a 120 KB body
# of `"\` took longer than a request may). Such a text is invalid JSON, refused by the parser.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels is not accepted."


def parse_json(body: bytes, *, encoding: str = "utf-8") -> Any:
    """The JSON value of `body`, or ParseError (400 `parse_error`): invalid, NaN/Infinity,
    not decodable with `encoding`, or nested deeper than MAX_DEPTH."""
    try:
        text = body.decode(encoding)
    except (LookupError, UnicodeDecodeError) as error:
        raise ParseError(f"The request body is not valid {encoding} text.") from error
    if nested_deeper_than(text, MAX_DEPTH):
        raise ParseError(TOO_DEEP)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        raise ParseError(f"JSON parse error - {error}") from error


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit`, found without recursion."""
    # Fewer opening brackets than the limit cannot nest deeper: most bodies stop here, at the
    # cost of two counts in C.
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    # An unterminated string leaves its brackets counted: the text is invalid JSON then,
    # refused either way.
    return False


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (media type, schema), parsing with `parse_json`."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        # DRF hands over the raw stream, which Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not
        # bound: read one byte more than it allows, and refuse a longer body with a 413.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise BodyTooLarge()
        return parse_json(body, encoding=encoding)


class BodyTooLarge(APIException):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


class NestingLimitMiddleware:
    """A too deeply nested body sent to dj-stripe's webhook view is a 400 before the view runs.

    That view stores the body and `json.loads()` it before checking the Stripe signature, and
    catches ValueError only: `[` x 100,000 from anyone who knows the webhook URL was a 500 with
    a traceback logged (and stored). Every other view parses through `parse_json`.
    """

    PATHS = ("/stripe/",)

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path_info.startswith(self.PATHS):
            # Decoded as dj-stripe decodes it; a body it cannot decode, it does not parse.
            try:
                text = request.body.decode(request.encoding or "utf-8")
            except (LookupError, UnicodeDecodeError):
                text = ""
            if nested_deeper_than(text, MAX_DEPTH):
                # Imported here: ahoum.errors imports DRF's views, which import this module.
                from ahoum.errors import error_body

                return JsonResponse(error_body("parse_error", TOO_DEEP), status=400)
        return self.get_response(request)
