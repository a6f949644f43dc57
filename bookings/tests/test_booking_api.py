"""POST /bookings/, GET /bookings/, GET /bookings/{id}, POST /bookings/{id}/cancel."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services
from bookings.models import Booking, BookingAudit, BookingStatus, PaymentStatus
from conftest import client_for
from events.models import EventStatus
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def book(client, event_id):
    return client.post("/bookings/", {"event_id": event_id}, format="json")


@pytest.fixture
def paid_event():
    return EventFactory(price=Decimal("49.50"), currency="USD", capacity=2)


@pytest.fixture
def free_event():
    return EventFactory(price=Decimal("0"), capacity=2)


# --- creating --------------------------------------------------------------------------------


def test_free_event_is_confirmed_at_once(user_client, user, free_event):
    response = book(user_client, free_event.pk)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["payment_status"] == "free"
    assert body["hold_expires_at"] is None
    assert body["event_id"] == free_event.pk
    assert body["user_id"] == user.pk
    assert body["facilitator_id"] == free_event.facilitator_id
    assert body["amount"] == "0.00"


def test_paid_event_is_held_pending_and_unpaid(user_client, paid_event, settings):
    settings.BOOKING_HOLD_MINUTES = 30
    before = timezone.now()

    response = book(user_client, paid_event.pk)

    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["payment_status"]) == ("pending", "unpaid")
    assert (body["amount"], body["currency"]) == ("49.50", "USD")
    booking = Booking.objects.get(pk=body["id"])
    assert before + timedelta(minutes=30) <= booking.hold_expires_at
    assert booking.hold_expires_at <= timezone.now() + timedelta(minutes=30)
    assert booking.facilitator_id == paid_event.facilitator_id


def test_amount_is_copied_at_booking_time(user, paid_event):
    booking = services.book_event(user=user, event_id=paid_event.pk)
    paid_event.price = Decimal("99.00")
    paid_event.save()

    booking.refresh_from_db()
    assert booking.amount == Decimal("49.50")


def test_booking_requires_authentication(api_client, free_event):
    response = book(api_client, free_event.pk)

    assert response.status_code == 401
    assert not Booking.objects.exists()


@pytest.mark.parametrize("body", [{}, {"event_id": "abc"}, {"event_id": None}, {"event_id": 0}])
def test_missing_or_malformed_event_id_is_400(user_client, body):
    response = user_client.post("/bookings", body, format="json")

    assert response.status_code == 400
    assert "event_id" in response.json()["fields"]


def test_unknown_event_is_404(user_client):
    response = book(user_client, 987654)

    assert response.status_code == 404
    assert response.json()["code"] == "event_not_found"


def test_cancelled_event_is_409(user_client):
    event = EventFactory(status=EventStatus.CANCELLED)

    response = book(user_client, event.pk)

    assert response.status_code == 409
    assert response.json()["code"] == "event_not_bookable"


def test_started_event_is_409(user_client):
    event = EventFactory(starts_at=timezone.now() - timedelta(minutes=5))

    response = book(user_client, event.pk)

    assert response.status_code == 409
    assert response.json()["code"] == "event_not_bookable"


def test_sold_out_is_409(free_event):
    for _ in range(2):
        assert book(client_for(UserFactory()), free_event.pk).status_code == 201

    response = book(client_for(UserFactory()), free_event.pk)

    assert response.status_code == 409
    assert response.json()["code"] == "sold_out"
    assert Booking.objects.count() == 2


def test_already_booked_is_409(user_client, paid_event):
    first = book(user_client, paid_event.pk)

    again = book(user_client, paid_event.pk)

    assert again.status_code == 409
    assert again.json()["code"] == "already_booked"
    assert again.json()["booking_id"] == first.json()["id"]


def test_facilitator_cannot_book_own_event_but_can_book_others(free_event):
    owner = client_for(free_event.facilitator)
    other = client_for(FacilitatorFactory())

    assert book(owner, free_event.pk).status_code == 403
    assert book(other, free_event.pk).status_code == 201


# --- holds -----------------------------------------------------------------------------------


def test_lapsed_hold_frees_the_seat_at_once_without_any_job(api_client):
    event = EventFactory(capacity=1, price=Decimal("10"))
    first = UserFactory()
    services.book_event(user=first, event_id=event.pk)
    assert book(client_for(UserFactory()), event.pk).json()["code"] == "sold_out"

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        assert api_client.get(f"/events/{event.pk}").json()["seats_left"] == 1
        second = book(client_for(UserFactory()), event.pk)

    assert second.status_code == 201


def test_rebooking_after_own_hold_lapsed_expires_the_old_one(user, paid_event):
    old = services.book_event(user=user, event_id=paid_event.pk)

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        new = services.book_event(user=user, event_id=paid_event.pk)

    old.refresh_from_db()
    assert old.status == BookingStatus.EXPIRED
    assert new.status == BookingStatus.PENDING


def test_expire_stale_holds_marks_only_lapsed_unpaid_holds(paid_event, free_event):
    lapsing = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    confirmed = services.book_event(user=UserFactory(), event_id=free_event.pk)
    later = timezone.now() + timedelta(minutes=31)
    with time_machine.travel(later):
        fresh = services.book_event(user=UserFactory(), event_id=paid_event.pk)

        assert services.expire_stale_holds() == 1

    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {
        lapsing.pk: BookingStatus.EXPIRED,
        confirmed.pk: BookingStatus.CONFIRMED,
        fresh.pk: BookingStatus.PENDING,
    }
    audit = BookingAudit.objects.get(booking=lapsing, to_status=BookingStatus.EXPIRED)
    assert audit.actor is None and audit.reason == "hold expired"


def test_expire_holds_command(paid_event, capsys):
    from django.core.management import call_command

    services.book_event(user=UserFactory(), event_id=paid_event.pk)
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        call_command("expire_holds")

    assert "1 holds expired" in capsys.readouterr().out
    assert Booking.objects.get().status == BookingStatus.EXPIRED


def test_expire_holds_command_goes_on_batch_after_batch(capsys, monkeypatch):
    from functools import partial

    from django.core.management import call_command

    from bookings.management.commands import expire_holds

    event = EventFactory(price=Decimal("10.00"), capacity=5)
    for _ in range(3):
        services.book_event(user=UserFactory(), event_id=event.pk)
    monkeypatch.setattr(
        expire_holds, "expire_stale_holds", partial(services.expire_stale_holds, limit=2)
    )
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        call_command("expire_holds")

    assert "3 holds expired" in capsys.readouterr().out
    assert set(Booking.objects.values_list("status", flat=True)) == {BookingStatus.EXPIRED}


# --- reading ---------------------------------------------------------------------------------


def test_list_shows_only_own_bookings_newest_first_with_event_summary(user, user_client):
    events = EventFactory.create_batch(3)
    mine = [services.book_event(user=user, event_id=event.pk) for event in events]
    services.book_event(user=UserFactory(), event_id=events[0].pk)

    response = user_client.get("/bookings/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [b["id"] for b in body["results"]] == [b.pk for b in reversed(mine)]
    summary = body["results"][0]["event"]
    assert summary["title"] == events[2].title
    assert set(summary) >= {"title", "starts_at", "timezone", "location"}


def test_list_filters_by_status_and_when(user, user_client):
    upcoming = services.book_event(user=user, event_id=EventFactory(price=0).pk)
    cancelled = services.book_event(user=user, event_id=EventFactory(price=0).pk)
    services.cancel_booking(booking=cancelled, by=user)
    started = EventFactory(price=0, starts_at=timezone.now() + timedelta(minutes=1))
    past = services.book_event(user=user, event_id=started.pk)

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        by_status = user_client.get("/bookings/?status=cancelled").json()["results"]
        upcoming_ids = [
            b["id"] for b in user_client.get("/bookings/?when=upcoming").json()["results"]
        ]
        past_ids = [b["id"] for b in user_client.get("/bookings/?when=past").json()["results"]]

    assert [b["id"] for b in by_status] == [cancelled.pk]
    assert sorted(upcoming_ids) == sorted([upcoming.pk, cancelled.pk])
    assert past_ids == [past.pk]


@pytest.mark.parametrize("query", ["status=lost", "when=tomorrow"])
def test_list_bad_filter_is_400(user_client, query):
    response = user_client.get(f"/bookings/?{query}")

    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["fields"]


def test_someone_elses_booking_is_404_to_read_and_cancel(free_event):
    owner = UserFactory()
    booking = services.book_event(user=owner, event_id=free_event.pk)
    stranger = client_for(UserFactory())

    assert client_for(owner).get(f"/bookings/{booking.pk}").status_code == 200
    assert stranger.get(f"/bookings/{booking.pk}").status_code == 404
    assert stranger.post(f"/bookings/{booking.pk}/cancel").status_code == 404
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert stranger.get("/bookings/").json()["count"] == 0


def test_list_query_count_does_not_grow_with_the_page(user, user_client):
    def queries_for_page(size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert user_client.get(f"/bookings/?page_size={size}").status_code == 200
        return len(captured)

    for event in EventFactory.create_batch(25):
        services.book_event(user=user, event_id=event.pk)

    assert queries_for_page(2) == queries_for_page(25)


# --- cancelling --------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [Decimal("0"), Decimal("20")])
def test_owner_cancels_and_the_seat_is_free_at_once(user, user_client, price):
    event = EventFactory(capacity=1, price=price)
    booking = services.book_event(user=user, event_id=event.pk)

    response = user_client.post(f"/bookings/{booking.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert book(client_for(UserFactory()), event.pk).status_code == 201


def test_cancelling_twice_is_409(user, user_client, free_event):
    booking = services.book_event(user=user, event_id=free_event.pk)
    user_client.post(f"/bookings/{booking.pk}/cancel")

    response = user_client.post(f"/bookings/{booking.pk}/cancel")

    assert response.status_code == 409
    assert response.json()["code"] == "not_cancellable"


def test_audit_trail_records_each_transition(user, user_client, paid_event):
    booking = services.book_event(user=user, event_id=paid_event.pk)
    user_client.post(f"/bookings/{booking.pk}/cancel")

    rows = list(
        BookingAudit.objects.filter(booking=booking).values_list(
            "version", "change", "from_status", "to_status", "to_payment_status", "actor", "reason"
        )
    )

    assert rows == [
        (1, "booking.created", "", "pending", "unpaid", user.pk, "booked"),
        (
            2,
            "booking.cancelled",
            "pending",
            "cancelled",
            "unpaid",
            user.pk,
            "cancelled by attendee",
        ),
    ]
    booking.refresh_from_db()
    assert booking.version == 2 and booking.cancelled_at is not None


def test_payment_status_values(user, paid_event, free_event):
    assert (
        services.book_event(user=user, event_id=free_event.pk).payment_status == PaymentStatus.FREE
    )
    assert (
        services.book_event(user=user, event_id=paid_event.pk).payment_status
        == PaymentStatus.UNPAID
    )


def test_every_change_is_announced_once_with_its_name(user, paid_event):
    from bookings.signals import booking_changed

    heard = []

    def listen(sender, booking, audit, **kwargs):
        heard.append((booking.pk, audit.version, audit.change))

    booking_changed.connect(listen)
    try:
        booking = services.book_event(user=user, event_id=paid_event.pk)
        services.mark_paid(booking_id=booking.pk)
        services.mark_paid(booking_id=booking.pk)  # a replay announces nothing
        services.mark_refunded(booking_id=booking.pk)
    finally:
        booking_changed.disconnect(listen)

    assert heard == [
        (booking.pk, 1, "booking.created"),
        (booking.pk, 2, "booking.paid"),
        (booking.pk, 3, "booking.refunded"),
    ]


@pytest.mark.parametrize("query", ["when=", "status="])
def test_list_filter_without_a_value_is_400(user_client, query):
    response = user_client.get(f"/bookings/?{query}")

    assert response.status_code == 400
    assert query.rstrip("=") in response.json()["fields"]
