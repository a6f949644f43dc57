"""POST/PUT/PATCH/DELETE /events: the permission matrix and the business guards."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services as booking_services
from conftest import client_for, clients_by_role
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def new_event_body(**overrides) -> dict:
    starts_at = timezone.now() + timedelta(days=10)
    return {
        "title": "Sound Bath",
        "description": "Gongs.",
        "type": "Meditation",
        "rating": 4.5,
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Lisbon",
        "location": "Lisbon",
        "capacity": 12,
        "price": "30.00",
        "currency": "eur",
    } | overrides


@pytest.fixture
def owner():
    return FacilitatorFactory()


@pytest.fixture
def event(owner):
    return EventFactory(facilitator=owner, capacity=3)


@pytest.fixture
def callers(owner):
    return clients_by_role(owner)


def call(callers, who, api_client):
    return callers[who] or api_client


# --- create -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("user", 403), ("other_facilitator", 201), ("owner", 201)],
)
def test_create_permissions(api_client, callers, who, status):
    response = call(callers, who, api_client).post("/events/", new_event_body(), format="json")

    assert response.status_code == status, response.json()
    assert Event.objects.count() == (1 if status == 201 else 0)


def test_facilitator_creates_event_run_by_themselves(owner):
    response = client_for(owner).post("/events/", new_event_body(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["facilitator_id"] == owner.pk
    assert body["seats_left"] == 12
    assert body["currency"] == "EUR"
    assert body["status"] == "scheduled"


def test_facilitator_cannot_create_for_another_facilitator(owner):
    other = FacilitatorFactory()

    response = client_for(owner).post(
        "/events", new_event_body(facilitator_id=other.pk), format="json"
    )

    assert response.status_code == 403
    assert not Event.objects.exists()


def test_staff_creates_for_a_facilitator(callers, owner):
    response = callers["staff"].post("/events", new_event_body(facilitator_id=owner.pk))

    assert response.status_code == 201
    assert Event.objects.get().facilitator == owner


def test_staff_must_name_a_facilitator(callers):
    response = callers["staff"].post("/events", new_event_body())

    assert response.status_code == 400
    assert "facilitator_id" in response.json()["fields"]


def test_event_cannot_be_run_by_a_plain_user(callers):
    plain = UserFactory()

    response = callers["staff"].post("/events", new_event_body(facilitator_id=plain.pk))

    assert response.status_code == 400
    assert "facilitator_id" in response.json()["fields"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ends_at": (timezone.now() + timedelta(days=9)).isoformat()}, "ends_at"),
        ({"starts_at": (timezone.now() - timedelta(days=1)).isoformat()}, "starts_at"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"currency": "euro"}, "currency"),
        ({"capacity": 0}, "capacity"),
        ({"price": "-1.00"}, "price"),
        ({"rating": 5.5}, "rating"),
        ({"title": ""}, "title"),
        ({"starts_at": "next week"}, "starts_at"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(owner, overrides, field):
    response = client_for(owner).post("/events", new_event_body(**overrides), format="json")

    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]
    assert not Event.objects.exists()


def test_create_missing_fields(owner):
    response = client_for(owner).post("/events", {}, format="json")

    assert response.status_code == 400
    assert {"title", "type", "starts_at", "ends_at", "capacity"} <= set(response.json()["fields"])


# --- update -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("user", 403), ("other_facilitator", 403), ("owner", 200), ("staff", 200)],
)
@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_permissions(api_client, callers, event, who, status, method):
    body = new_event_body(title="Renamed") if method == "put" else {"title": "Renamed"}

    response = getattr(call(callers, who, api_client), method)(
        f"/events/{event.pk}", body, format="json"
    )

    assert response.status_code == status, response.json()
    event.refresh_from_db()
    assert (event.title == "Renamed") == (status == 200)


def test_owner_cannot_hand_event_to_another_facilitator(callers, event):
    other = FacilitatorFactory()

    response = callers["owner"].patch(f"/events/{event.pk}", {"facilitator_id": other.pk})

    assert response.status_code == 403
    event.refresh_from_db()
    assert event.facilitator_id != other.pk


def test_patch_checks_end_after_start_against_stored_values(callers, event):
    response = callers["owner"].patch(
        f"/events/{event.pk}", {"ends_at": (event.starts_at - timedelta(hours=1)).isoformat()}
    )

    assert response.status_code == 400
    assert "ends_at" in response.json()["fields"]


def test_capacity_cannot_drop_below_seats_taken(callers, event):
    for _ in range(2):
        booking_services.book_event(user=UserFactory(), event_id=event.pk)

    too_low = callers["owner"].patch(f"/events/{event.pk}", {"capacity": 1})
    exact = callers["owner"].patch(f"/events/{event.pk}", {"capacity": 2})

    assert too_low.status_code == 400
    assert too_low.json()["code"] == "capacity_below_seats_taken"
    assert "capacity" in too_low.json()["fields"]
    assert exact.status_code == 200
    assert exact.json()["seats_left"] == 0


# --- delete -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("user", 403), ("other_facilitator", 403), ("owner", 204), ("staff", 204)],
)
def test_delete_permissions(api_client, callers, event, who, status):
    response = call(callers, who, api_client).delete(f"/events/{event.pk}")

    assert response.status_code == status
    assert Event.objects.filter(pk=event.pk).exists() == (status != 204)


def test_event_with_any_booking_cannot_be_deleted(callers, event):
    booking = booking_services.book_event(user=UserFactory(), event_id=event.pk)
    booking_services.cancel_booking(booking=booking, by=booking.user)

    response = callers["owner"].delete(f"/events/{event.pk}/")

    assert response.status_code == 409
    assert response.json()["code"] == "event_has_bookings"
    assert f"/facilitator/cancel/{event.pk}" in response.json()["detail"]
    assert Event.objects.filter(pk=event.pk).exists()
