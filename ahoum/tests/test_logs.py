"""Operable logs: request ids, one JSON line per request, nothing secret in them."""

import json
import logging

import pytest

from accounts.tests.factories import TEST_PASSWORD, UserFactory
from ahoum.logs import JsonFormatter, request_id_var
from bookings import services
from conftest import client_for
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def as_json(record: logging.LogRecord) -> dict:
    return json.loads(JsonFormatter().format(record))


def request_lines(caplog) -> list[dict]:
    return [as_json(r) for r in caplog.records if r.name == "ahoum.request"]


def test_request_id_is_taken_from_the_header_and_returned(api_client, caplog):
    caplog.set_level(logging.INFO)

    response = api_client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")

    assert response["X-Request-ID"] == "abc-123"
    (line,) = request_lines(caplog)
    assert line["request_id"] == "abc-123"


def test_request_id_is_generated_when_missing_or_unsafe(api_client):
    plain = api_client.get("/healthz")
    unsafe = api_client.get("/healthz", HTTP_X_REQUEST_ID="x" * 500)

    assert len(plain["X-Request-ID"]) == 32
    assert unsafe["X-Request-ID"] != "x" * 500


def test_one_json_line_per_request_with_user_status_and_duration(caplog):
    caplog.set_level(logging.INFO)
    person = UserFactory()

    client_for(person).get("/auth/me?secret=should-not-appear")

    (line,) = request_lines(caplog)
    assert line["method"] == "GET"
    assert line["path"] == "/auth/me"
    assert line["status"] == 200
    assert line["user_id"] == person.pk
    assert line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["message"] == "request"


def test_logs_never_contain_passwords_or_tokens(api_client, caplog):
    caplog.set_level(logging.DEBUG)
    person = UserFactory(email="log@example.com")

    tokens = api_client.post(
        "/auth/login", {"email": "log@example.com", "password": TEST_PASSWORD}
    ).json()
    client_for(person).get("/auth/me")

    ours = [r for r in caplog.records if not r.name.startswith("factory")]  # test-data builder
    text = "\n".join(JsonFormatter().format(record) for record in ours)
    assert TEST_PASSWORD not in text
    assert tokens["access_token"] not in text
    assert tokens["refresh_token"] not in text
    assert "Bearer" not in text


def test_booking_transitions_are_logged_with_the_request_id(caplog):
    caplog.set_level(logging.INFO)
    person = UserFactory()
    event = EventFactory()

    response = client_for(person).post(
        "/bookings/", {"event_id": event.pk}, format="json", HTTP_X_REQUEST_ID="req-42"
    )

    transitions = [as_json(r) for r in caplog.records if r.getMessage() == "booking transition"]
    assert transitions[0]["booking_id"] == response.json()["id"]
    assert transitions[0]["change"] == "booking.created"
    assert transitions[0]["request_id"] == "req-42"


def test_log_lines_outside_requests_have_no_request_id():
    token = request_id_var.set("")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        line = as_json(record)
    finally:
        request_id_var.reset(token)

    assert line["message"] == "hello world"
    assert "request_id" not in line


def test_service_log_extra_fields_are_kept(user):
    event = EventFactory(price=0)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", (), None)
    record.booking_id = services.book_event(user=user, event_id=event.pk).pk

    assert as_json(record)["booking_id"] == record.booking_id
