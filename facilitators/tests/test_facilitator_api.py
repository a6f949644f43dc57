"""/facilitator/registrations/{id}, /facilitator/cancel/{id}, /facilitator/events."""

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services
from bookings.models import Booking, BookingAudit, Refund
from bookings.services import payments
from conftest import assert_renders_like_drf, client_for, clients_by_role, run_tasks
from events.models import Event
from events.tests.factories import EventFactory
from facilitators.serializers import FacilitatorEventSerializer
from facilitators.views import FacilitatorEventsView
from fakes.stripe_api import TEST_SECRET_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return FacilitatorFactory(name="Maya")


@pytest.fixture
def event(owner):
    return EventFactory(facilitator=owner, capacity=10, price=Decimal("20.00"))


@pytest.fixture
def callers(owner):
    return clients_by_role(owner)


MATRIX = [
    ("anonymous", 401),
    ("user", 403),
    ("other_facilitator", 403),
    ("owner", 200),
    ("staff", 200),
]


@pytest.mark.parametrize(("who", "status"), MATRIX)
def test_registrations_permissions(api_client, callers, event, who, status):
    response = (callers[who] or api_client).get(f"/facilitator/registrations/{event.pk}")

    assert response.status_code == status


@pytest.mark.parametrize(("who", "status"), MATRIX)
def test_cancel_permissions(api_client, callers, event, who, status):
    response = (callers[who] or api_client).post(f"/facilitator/cancel/{event.pk}")

    assert response.status_code == status
    event.refresh_from_db()
    assert (event.status == "cancelled") == (status == 200)


@pytest.mark.parametrize(
    ("who", "status", "sees_event"),
    [
        ("anonymous", 401, False),
        ("user", 403, False),
        ("other_facilitator", 200, False),  # their own (empty) list
        ("owner", 200, True),
        ("staff", 200, True),
    ],
)
def test_own_events_permissions(api_client, callers, event, who, status, sees_event):
    response = (callers[who] or api_client).get("/facilitator/events")

    assert response.status_code == status
    if status == 200:
        assert (event.pk in [e["id"] for e in response.json()["results"]]) == sees_event


@pytest.mark.parametrize(
    "path", ["/facilitator/registrations/999999", "/facilitator/cancel/999999"]
)
def test_unknown_event_is_404(callers, path):
    call = callers["owner"].get if "registrations" in path else callers["owner"].post

    assert call(path).status_code == 404


def test_registrations_list_and_summary(callers, event):
    alice = UserFactory(name="Alice", email="alice@example.com")
    paid = services.book_event(user=alice, event_id=event.pk)
    services.mark_paid(booking_id=paid.pk)
    services.book_event(user=UserFactory(), event_id=event.pk)  # pending
    gone = services.book_event(user=UserFactory(), event_id=event.pk)
    services.cancel_booking(booking=gone, by=gone.user)
    services.book_event(user=UserFactory(), event_id=EventFactory().pk)  # another event

    response = callers["owner"].get(f"/facilitator/registrations/{event.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    first = body["results"][0]
    assert first == {
        "booking_id": paid.pk,
        "user_id": alice.pk,
        "name": "Alice",
        "email": "alice@example.com",
        "status": "confirmed",
        "payment_status": "paid",
        "amount": "20.00",
        "currency": "EUR",
        "booked_at": first["booked_at"],
        "seats": 1,
        "attendees": [
            {
                "id": paid.attendees.get().pk,
                "position": 1,
                "name": "Alice",
                "email": "alice@example.com",
                "status": "confirmed",
            }
        ],
    }
    assert body["summary"] == {
        "event_id": event.pk,
        "title": event.title,
        "capacity": 10,
        "seats_left": 8,
        "currency": "EUR",
        "confirmed": 1,
        "pending": 1,
        "cancelled": 1,
        "expired": 0,
        "seats_confirmed": 1,
        "seats_pending": 1,
        "seats_cancelled": 1,
        "seats_expired": 0,
        "refunded": 0,
        "revenue": "20.00",
        "waitlist_waiting": 0,
        "seats_waiting": 0,
        "waitlist_offered": 0,
        "waitlist_open": True,
    }
    assert body["waitlist"] == {"count": 0, "results": []}


def test_registrations_list_each_bookings_attendees_and_the_summary_counts_seats(callers, event):
    booker = UserFactory(name="Alice", email="alice@example.com")
    group = services.book_event(
        user=booker,
        event_id=event.pk,
        seats=3,
        attendees=[{"name": "Bea", "email": "bea@example.com"}, {"name": "Cai", "email": ""}],
    )
    services.mark_paid(booking_id=group.pk)
    single = services.book_event(user=UserFactory(name="Dan"), event_id=event.pk)  # pending

    response = callers["owner"].get(f"/facilitator/registrations/{event.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2  # bookings, not seats
    by_id = {row["booking_id"]: row for row in body["results"]}
    assert (by_id[group.pk]["name"], by_id[group.pk]["email"]) == ("Alice", "alice@example.com")
    assert (by_id[group.pk]["seats"], by_id[group.pk]["amount"]) == (3, "60.00")
    seats = {seat.position: seat.pk for seat in group.attendees.all()}
    assert by_id[group.pk]["attendees"] == [
        {"id": seats[1], "position": 1, "name": "Alice", "email": "alice@example.com",
         "status": "confirmed"},
        {"id": seats[2], "position": 2, "name": "Bea", "email": "bea@example.com",
         "status": "confirmed"},
        {"id": seats[3], "position": 3, "name": "Cai", "email": "", "status": "confirmed"},
    ]  # fmt: skip
    assert by_id[single.pk]["seats"] == 1
    assert [(a["name"], a["status"]) for a in by_id[single.pk]["attendees"]] == [("Dan", "pending")]
    summary = body["summary"]
    assert (summary["confirmed"], summary["pending"]) == (1, 1)
    assert (summary["seats_confirmed"], summary["seats_pending"]) == (3, 1)
    assert (summary["seats_cancelled"], summary["seats_expired"]) == (0, 0)
    assert (summary["seats_left"], summary["revenue"]) == (6, "60.00")


def test_a_seat_cancelled_on_its_own_shows_cancelled_and_frees_its_seat(callers, event):
    group = services.book_event(
        user=UserFactory(), event_id=event.pk, seats=3, attendees=[{"name": "Bea"}]
    )
    bea = group.attendees.get(name="Bea")
    services.cancel_attendee(booking=group, attendee_id=bea.pk, by=group.user)

    body = callers["owner"].get(f"/facilitator/registrations/{event.pk}").json()

    (row,) = body["results"]
    assert (row["status"], row["seats"], row["amount"]) == ("pending", 2, "40.00")
    assert [(a["name"], a["status"]) for a in row["attendees"]] == [
        (group.user.name, "pending"),
        ("Bea", "cancelled"),
        (f"Guest 3 of {group.user.name}", "pending"),
    ]
    summary = body["summary"]
    assert (summary["pending"], summary["seats_pending"], summary["seats_left"]) == (1, 2, 8)


def test_registrations_filter_by_status_and_paginate(callers, event):
    for _ in range(3):
        services.book_event(user=UserFactory(), event_id=event.pk)
    gone = services.book_event(user=UserFactory(), event_id=event.pk)
    services.cancel_booking(booking=gone, by=gone.user)

    pending = callers["owner"].get(f"/facilitator/registrations/{event.pk}?status=pending")
    page = callers["owner"].get(f"/facilitator/registrations/{event.pk}?page_size=2")
    bad = callers["owner"].get(f"/facilitator/registrations/{event.pk}?status=lost")

    assert pending.json()["count"] == 3
    assert len(page.json()["results"]) == 2 and page.json()["next"]
    assert bad.status_code == 400 and "status" in bad.json()["fields"]


def test_registrations_query_count_does_not_grow_with_the_page(callers, owner):
    event = EventFactory(facilitator=owner, capacity=50)

    def queries(size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = callers["owner"].get(
                f"/facilitator/registrations/{event.pk}?page_size={size}"
            )
            assert response.status_code == 200
        return len(captured)

    for seats in range(10):  # 30 seats: attendees come in one query per page
        services.book_event(user=UserFactory(), event_id=event.pk, seats=seats % 5 + 1)

    assert queries(2) == queries(10)


def test_own_events_lists_only_mine_with_counts(callers, owner, event):
    services.book_event(user=UserFactory(), event_id=event.pk)
    EventFactory()  # someone else's

    mine = callers["owner"].get("/facilitator/events").json()
    everyone = callers["staff"].get("/facilitator/events").json()

    assert [e["id"] for e in mine["results"]] == [event.pk]
    assert mine["results"][0]["bookings_pending"] == 1
    assert mine["results"][0]["seats_left"] == 9
    assert everyone["count"] == 2


def test_own_events_count_seats_beside_bookings(callers, owner):
    event = EventFactory(facilitator=owner, capacity=20, price=Decimal("10.00"))
    paid = services.book_event(user=UserFactory(), event_id=event.pk, seats=4)
    services.mark_paid(booking_id=paid.pk)
    services.book_event(user=UserFactory(), event_id=event.pk, seats=2)
    services.book_event(user=UserFactory(), event_id=event.pk)
    gone = services.book_event(user=UserFactory(), event_id=event.pk, seats=5)
    services.cancel_booking(booking=gone, by=gone.user)
    untouched = EventFactory(facilitator=owner)

    results = callers["owner"].get("/facilitator/events").json()["results"]

    counts = {
        row["id"]: (
            row["bookings_confirmed"],
            row["bookings_pending"],
            row["seats_confirmed"],
            row["seats_pending"],
            row["seats_left"],
        )
        for row in results
    }
    assert counts == {event.pk: (1, 2, 4, 3, 13), untouched.pk: (0, 0, 0, 0, 10)}


# --- cancelling an event ----------------------------------------------------------------------


@pytest.fixture
def stripe_on(settings, fake_stripe, monkeypatch):
    settings.STRIPE_SECRET_KEY = TEST_SECRET_KEY
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    return fake_stripe


def paid_through_stripe(fake, event) -> Booking:
    """A booking paid as Stripe would report it (Checkout Session paid, payment intent known)."""
    booking = payments.book_with_checkout(user=UserFactory(), event_id=event.pk)
    session = fake.pay_session(booking.checkout_session_id)
    services.record_checkout_payment(
        booking_id=booking.pk,
        session_id=session["id"],
        payment_intent_id=session["payment_intent"],
        paid_at=timezone.now(),
    )
    return Booking.objects.get(pk=booking.pk)


@pytest.fixture
def mixed_bookings(stripe_on, owner):
    """Two paid, one unpaid, one free and one already-cancelled booking on one event."""
    event = EventFactory(facilitator=owner, capacity=10, price=Decimal("0"))
    free = services.book_event(user=UserFactory(), event_id=event.pk)
    Event.objects.filter(pk=event.pk).update(price=Decimal("35.00"))
    paid = [paid_through_stripe(stripe_on, event) for _ in range(2)]
    unpaid = services.book_event(user=UserFactory(), event_id=event.pk)
    gone = services.book_event(user=UserFactory(), event_id=event.pk)
    services.cancel_booking(booking=gone, by=gone.user)
    return event, {"free": free, "paid": paid, "unpaid": unpaid, "gone": gone}


def test_cancel_refunds_paid_and_cancels_the_rest(stripe_on, callers, mixed_bookings):
    event, bookings = mixed_bookings

    response = callers["owner"].post(
        f"/facilitator/cancel/{event.pk}", {"reason": "Teacher is ill"}, format="json"
    )

    # The answer comes at once: the worker settles the bookings and makes the refunds.
    assert response.status_code == 200
    assert response.json() == {
        "event_id": event.pk,
        "status": "cancelled",
        "refunded": 0,
        "cancelled": 0,
        "refunds_pending": 2,
        "refund_failed": 0,
        "to_settle": 4,
    }
    assert not stripe_on.calls("POST", "/v1/refunds")

    run_tasks()

    assert callers["owner"].post(f"/facilitator/cancel/{event.pk}").json() == {
        "event_id": event.pk,
        "status": "cancelled",
        "refunded": 2,
        "cancelled": 2,
        "refunds_pending": 0,
        "refund_failed": 0,
        "to_settle": 0,
    }
    refund_calls = stripe_on.calls("POST", "/v1/refunds")
    assert sorted(c.params["payment_intent"] for c in refund_calls) == sorted(
        b.payment_intent_id for b in bookings["paid"]
    )
    states = dict(Booking.objects.values_list("pk", "status"))
    payments_ = dict(Booking.objects.values_list("pk", "payment_status"))
    for booking in bookings["paid"]:
        assert (states[booking.pk], payments_[booking.pk]) == ("cancelled", "refunded")
    assert (states[bookings["unpaid"].pk], payments_[bookings["unpaid"].pk]) == (
        "cancelled",
        "unpaid",
    )
    assert (states[bookings["free"].pk], payments_[bookings["free"].pk]) == ("cancelled", "free")
    event.refresh_from_db()
    assert event.status == "cancelled" and event.cancellation_reason == "Teacher is ill"
    audit = BookingAudit.objects.filter(booking=bookings["free"], change="booking.event_cancelled")
    assert audit.get().reason == "event cancelled: Teacher is ill"
    assert not BookingAudit.objects.filter(
        booking=bookings["gone"], change="booking.event_cancelled"
    ).exists()


def test_cancelling_again_is_safe_and_answers_the_same(stripe_on, callers, mixed_bookings):
    event, _ = mixed_bookings
    callers["owner"].post(f"/facilitator/cancel/{event.pk}")
    run_tasks()
    first = callers["owner"].post(f"/facilitator/cancel/{event.pk}").json()

    second = callers["owner"].post(f"/facilitator/cancel/{event.pk}")
    run_tasks()

    assert second.status_code == 200
    assert second.json() == first
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 2


def test_cancelled_event_cannot_be_booked(callers, event):
    callers["owner"].post(f"/facilitator/cancel/{event.pk}")

    response = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk})

    assert response.status_code == 409
    assert response.json()["code"] == "event_not_bookable"


def test_refund_failure_is_recorded_and_retried(stripe_on, callers, owner):
    event = EventFactory(facilitator=owner, price=Decimal("35.00"))
    booking = paid_through_stripe(stripe_on, event)
    stripe_on.fail_next("POST", "/v1/refunds", status=500)

    callers["owner"].post(f"/facilitator/cancel/{event.pk}")
    run_tasks()
    summary = callers["owner"].post(f"/facilitator/cancel/{event.pk}").json()

    assert (summary["refunded"], summary["refunds_pending"], summary["refund_failed"]) == (0, 1, 0)
    refund = Refund.objects.get(booking=booking)
    assert (refund.status, refund.failures) == ("pending", 1) and "APIError" in refund.last_error
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("cancelled", "paid")

    with time_machine.travel(refund.next_attempt_at + timedelta(seconds=1)):
        run_tasks()

    booking.refresh_from_db()
    assert booking.payment_status == "refunded"
    later = callers["owner"].post(f"/facilitator/cancel/{event.pk}").json()
    assert (later["refunded"], later["refunds_pending"], later["refund_failed"]) == (1, 0, 0)
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 2


def test_event_cancelled_before_it_starts_even_after_cutoff(stripe_on, callers, owner):
    """The attendee's cancellation cutoff does not apply when the facilitator cancels."""
    event = EventFactory(
        facilitator=owner, price=Decimal("35.00"), starts_at=timezone.now() + timedelta(hours=2)
    )
    booking = paid_through_stripe(stripe_on, event)

    callers["owner"].post(f"/facilitator/cancel/{event.pk}")
    run_tasks()
    summary = callers["owner"].post(f"/facilitator/cancel/{event.pk}").json()

    assert summary["refunded"] == 1
    booking.refresh_from_db()
    assert booking.payment_status == "refunded"


def test_own_events_representation_matches_drf(facilitator):
    event = EventFactory(facilitator=facilitator)
    services.book_event(user=UserFactory(), event_id=event.pk, seats=2)
    view = FacilitatorEventsView()
    view.request = type("Request", (), {"user": facilitator})()

    for row in view.get_queryset():
        assert_renders_like_drf(FacilitatorEventSerializer, row)
