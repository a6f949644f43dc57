"""Hostile JSON bodies: too deeply nested ones are a 400 `parse_error`, never a 500.

`[` x 100,000 used to reach the recursive C scanner of `json` and end in a `RecursionError`
(a 500 and a logged traceback). Every body is now refused above MAX_DEPTH levels before it is
parsed, on every endpoint that reads one.
"""

import logging
import time

import pytest
from rest_framework.exceptions import ParseError

from ahoum import parsers
from conftest import client_for
from crm.tests.conftest import SECRET as CRM_SECRET
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

HOSTILE = "[" * 100_000
JUST_TOO_DEEP = "[" * (parsers.MAX_DEPTH + 1) + "]" * (parsers.MAX_DEPTH + 1)


def _client(role, facilitator):
    from rest_framework.test import APIClient

    from accounts.tests.factories import UserFactory

    if role == "anonymous":
        return APIClient()
    if role == "owner":
        return client_for(facilitator)
    return client_for(UserFactory())


# Every endpoint that parses a request body, as a caller who gets as far as the parser.
ENDPOINTS = [
    ("post", "/auth/register", "anonymous"),
    ("post", "/auth/login", "anonymous"),
    ("post", "/auth/refresh", "anonymous"),
    ("post", "/auth/logout", "anonymous"),
    ("post", "/auth/password", "user"),
    ("post", "/events/", "owner"),
    ("patch", "/events/{event}", "owner"),
    ("put", "/events/{event}", "owner"),
    ("post", "/bookings/", "user"),
    ("post", "/facilitator/cancel/{event}", "owner"),
]


def _request(method, path, role, body, facilitator, event):
    client = _client(role, facilitator)
    call = getattr(client, method)
    return call(path.format(event=event.pk), body, content_type="application/json")


def _assert_parse_error(response, caplog):
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "parse_error"
    assert set(body) == {"code", "detail"}
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"


@pytest.mark.parametrize(("method", "path", "role"), ENDPOINTS)
def test_deeply_nested_json_is_400_parse_error_on_every_endpoint(
    method, path, role, facilitator, caplog
):
    event = EventFactory(facilitator=facilitator)
    caplog.set_level(logging.INFO)

    response = _request(method, path, role, HOSTILE, facilitator, event)

    _assert_parse_error(response, caplog)


@pytest.mark.parametrize(("method", "path", "role"), ENDPOINTS)
def test_json_one_level_deeper_than_the_bound_is_refused_on_every_endpoint(
    method, path, role, facilitator, caplog
):
    event = EventFactory(facilitator=facilitator)

    response = _request(method, path, role, JUST_TOO_DEEP, facilitator, event)

    _assert_parse_error(response, caplog)
    assert f"{parsers.MAX_DEPTH}" in response.json()["detail"]


@pytest.fixture
def crm_token(settings) -> str:
    """The receiver's bearer token: one secret both ways, whatever the environment says."""
    settings.CRM_WEBHOOK_SECRET = CRM_SECRET
    settings.CRM_INBOUND_SECRET = ""
    return CRM_SECRET


def _post_to_crm(api_client, path, body, token):
    return api_client.post(
        path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


@pytest.mark.parametrize("path", ["/webhook", "/crm/webhook"])
def test_crm_receiver_refuses_deeply_nested_json(api_client, crm_token, path, caplog):
    # Under CRM_WEBHOOK_MAX_BYTES, so the body reaches the parser rather than the 413.
    response = _post_to_crm(api_client, path, "[" * 60_000, crm_token)

    _assert_parse_error(response, caplog)


@pytest.mark.parametrize("path", ["/webhook", "/crm/webhook"])
def test_crm_receiver_refuses_json_one_level_deeper_than_the_bound(
    api_client, crm_token, path, caplog
):
    response = _post_to_crm(api_client, path, JUST_TOO_DEEP, crm_token)

    _assert_parse_error(response, caplog)


def test_stripe_webhook_refuses_deeply_nested_json_before_dj_stripe_parses_it(
    stripe_webhooks, caplog
):
    from django.test import Client
    from djstripe.models import WebhookEventTrigger

    caplog.set_level(logging.INFO)
    response = Client(raise_request_exception=False).post(
        stripe_webhooks.url,
        HOSTILE,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=0",
    )

    _assert_parse_error(response, caplog)
    assert not WebhookEventTrigger.objects.exists()
    # A real event, nested as Stripe's are, still goes through.
    event = {
        "id": "evt_nested_ok",
        "object": "event",
        "type": "ping",
        "livemode": False,
        "api_version": "2024-06-20",
        "created": 1,
        "data": {"object": {"id": "x", "lines": {"data": [{"metadata": {"a": ["b"]}}]}}},
    }
    assert stripe_webhooks.send(event).status_code == 200
    assert WebhookEventTrigger.objects.get().valid


# --- The parser itself ---------------------------------------------------------------------


def test_parse_json_accepts_the_deepest_allowed_document():
    depth = parsers.MAX_DEPTH
    value = parsers.parse_json(("[" * depth + "]" * depth).encode())

    for _ in range(depth - 1):
        value = value[0]
    assert value == []


@pytest.mark.parametrize(
    "text",
    [
        '{"a":' * 65 + "1" + "}" * 65,
        "[" * 40 + '{"a":' * 30 + "1" + "}" * 30 + "]" * 40,
        "[" * 1_000_000,
        "{" * 1_000_000,
    ],
    ids=["objects", "mixed", "a_million_brackets", "a_million_braces"],
)
def test_parse_json_refuses_nesting_beyond_the_bound(text):
    with pytest.raises(ParseError) as raised:
        parsers.parse_json(text.encode())

    assert raised.value.detail.code == "parse_error"


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '{"a": "' + "[{" * 500 + '", "b": ["\\"[[[[", "\\\\"], "c": "]]]]"}'

    assert parsers.parse_json(text.encode()) == {
        "a": "[{" * 500,
        "b": ['"[[[[', "\\"],
        "c": "]]]]",
    }


def test_many_shallow_objects_are_fine():
    text = "[" + ",".join(f'{{"id": {n}, "tags": ["x"]}}' for n in range(5000)) + "]"

    assert len(parsers.parse_json(text.encode())) == 5000


@pytest.mark.parametrize(
    "body", [b"{not json", b"NaN", b'{"a": Infinity}', b"\xff\xfe", b""], ids=repr
)
def test_parse_json_refuses_what_is_not_json(body):
    with pytest.raises(ParseError):
        parsers.parse_json(body)


def test_drf_uses_the_bounded_parser(settings):
    from rest_framework.settings import api_settings

    assert list(api_settings.DEFAULT_PARSER_CLASSES) == [parsers.JSONParser]


# --- found in review: the nesting check must stay linear ------------------------------------


def test_nesting_check_of_a_json_body_takes_linear_time(api_client):
    """65 shallow arrays (so the scan runs), then an unterminated string of escaped quotes:
    the string pattern rescans to the end from every quote. 30 KB takes seconds here; on the
    review server 60 KB took 14 s and 120 KB ran into GUNICORN_TIMEOUT (a 503, the worker
    killed), with no token."""
    body = ("[]" * 65 + '"\\' * 15_000).encode()

    started = time.perf_counter()
    response = api_client.generic("POST", "/auth/login", body, content_type="application/json")
    elapsed = time.perf_counter() - started

    assert response.status_code == 400
    assert elapsed < 1.0, f"a {len(body)} byte body took {elapsed:.1f} s to refuse"


@pytest.mark.parametrize("path", ["/auth/login", "/events/", "/bookings/"])
def test_a_body_over_the_upload_limit_is_a_413_and_is_never_parsed(
    facilitator_client, path, settings, monkeypatch
):
    from ahoum import parsers

    api_client = facilitator_client  # signed in: the body is read after authentication
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    parsed = []
    monkeypatch.setattr(parsers, "parse_json", lambda *args, **kwargs: parsed.append(1))
    body = b'{"email": "' + b"a" * 2000 + b'"}'

    response = api_client.generic("POST", path, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert parsed == []
