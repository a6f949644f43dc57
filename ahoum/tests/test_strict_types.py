"""Inputs of the wrong JSON type are refused (400 naming the field), never coerced."""

import pytest

from accounts.tests.factories import FacilitatorFactory
from conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/auth/register",
            {"email": "a@b.co", "password": 12345678901234.5, "name": "A"},
            "password",
        ),
        ("/auth/register", {"email": "a@b.co", "password": "long-enough-pw-1", "name": 7}, "name"),
        ("/auth/login", {"email": "a@b.co", "password": 123456789}, "password"),
        ("/auth/refresh", {"refresh_token": 5}, "refresh_token"),
        ("/bookings/", {"event_id": "5"}, "event_id"),
        ("/bookings/", {"event_id": True}, "event_id"),
    ],
)
def test_wrong_json_types_are_400(user_client, path, body, field):
    response = user_client.post(path, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", 30), ("rating", "4.5"), ("capacity", "10"), ("title", 5), ("capacity", 2.5)],
)
def test_event_fields_take_their_documented_type_only(field, value):
    from events.tests.test_event_writes import new_event_body

    client = client_for(FacilitatorFactory())

    response = client.post("/events/", new_event_body(**{field: value}), format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
