"""Booking takes the event's row lock last, and falls back to the exact way when it must.

`bookings.services.book_event`: the usual booking writes its rows first and claims the seat
in its last statement; what it cannot decide alone goes the lock-first way. The deadlock
between the two ways (the same person booking twice at once) is played out on PostgreSQL.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from ahoum.db import service_transaction
from bookings import services
from bookings.exceptions import EventNotBookable, SoldOut
from bookings.models import Booking, BookingAudit, BookingStatus
from bookings.tests.test_seat_counter import assert_counters_match_bookings, claimed
from conftest import client_for
from events.models import Event, EventStatus
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT", "SET LOCAL")


def statements(captured) -> list[str]:
    return [q["sql"] for q in captured if not q["sql"].upper().startswith(TRANSACTION_CONTROL)]


def test_the_seat_is_claimed_in_the_last_statement_before_commit(user):
    event = EventFactory(price=Decimal("20"))

    with CaptureQueriesContext(connection) as captured:
        booking = services.book_event(user=user, event_id=event.pk)

    sql = statements(captured)
    assert sql[-1].startswith('UPDATE "events_event" SET seats_claimed = seats_claimed + 1')
    # The hot path's statements, one each (the regression guard for the benchmark's spread):
    # the event read, the booking, its audit row, its expiry task, the claim.
    assert [statement.split()[:3] for statement in sql] == [
        ["SELECT", '"events_event"."id",', '"events_event"."title",'],
        ["INSERT", "INTO", '"bookings_booking"'],
        ["INSERT", "INTO", '"bookings_bookingaudit"'],
        ["INSERT", "INTO", '"django_tasks_database_dbtaskresult"'],
        ["UPDATE", '"events_event"', "SET"],
    ]
    assert booking.event.seats_claimed == 1  # the response shows the event as locked
    assert claimed(event) == 1


def test_a_sold_out_event_is_refused_without_its_lock(user):
    event = EventFactory(capacity=1)
    services.book_event(user=UserFactory(), event_id=event.pk)

    with CaptureQueriesContext(connection) as captured, pytest.raises(SoldOut):
        services.book_event(user=user, event_id=event.pk)

    assert not any(statement.startswith("UPDATE") for statement in statements(captured))
    assert claimed(event) == 1


def test_a_full_looking_event_with_a_lapsed_hold_books_the_exact_way(user):
    event = EventFactory(capacity=1, price=Decimal("20"))
    lapsed = services.book_event(user=UserFactory(), event_id=event.pk)
    Booking.objects.filter(pk=lapsed.pk).update(hold_expires_at=timezone.now() - timedelta(1))

    booking = services.book_event(user=user, event_id=event.pk)

    assert booking.status == BookingStatus.PENDING
    assert claimed(event) == 2  # the lapsed hold is still claimed until it is marked expired
    assert Event.objects.with_seats_left().get(pk=event.pk).seats_left == 0
    assert_counters_match_bookings()


def change_the_event_while_the_booking_is_written(monkeypatch, **changes) -> list[int]:
    """The first booking written changes its event's row just before the seat is claimed.

    The change is made in the booking's own transaction (SQLite has no other way to be
    there), so it rolls back with the booking; the bookings written are returned.
    """
    write = services._write_booking
    calls = []

    def write_then_change(*, user, event, now):
        booking = write(user=user, event=event, now=now)
        if not calls:
            Event.objects.filter(pk=event.pk).update(**changes)
        calls.append(booking.pk)
        return booking

    monkeypatch.setattr(services, "_write_booking", write_then_change)
    return calls


def test_a_price_changed_before_the_lock_books_again_at_the_event_price(user, monkeypatch):
    event = EventFactory(price=Decimal("20"))
    written = change_the_event_while_the_booking_is_written(monkeypatch, price=Decimal("25"))

    booking = services.book_event(user=user, event_id=event.pk)

    # Rolled back and booked again the exact way, at the price the event has then.
    assert len(written) == 2
    event.refresh_from_db()
    assert booking.amount == event.price
    assert list(Booking.objects.values_list("pk", "amount")) == [(booking.pk, event.price)]
    assert list(BookingAudit.objects.values_list("booking_id", flat=True)) == [booking.pk]
    assert claimed(event) == 1


@pytest.mark.parametrize(
    "changes",
    [{"title": "Renamed"}, {"starts_at": F("starts_at") - timedelta(minutes=5)}],
    ids=["title", "starts_at"],
)
def test_an_event_changed_before_the_lock_is_booked_again_from_the_event_as_locked(
    user, monkeypatch, changes
):
    """The booking's audit and CRM payload are written from the event as read; the event
    as locked must match it, or the booking is written again the exact way."""
    event = EventFactory()
    written = change_the_event_while_the_booking_is_written(monkeypatch, **changes)

    booking = services.book_event(user=user, event_id=event.pk)

    assert len(written) == 2
    assert list(Booking.objects.values_list("pk", flat=True)) == [booking.pk]
    assert list(BookingAudit.objects.values_list("booking_id", flat=True)) == [booking.pk]
    assert claimed(event) == 1


def test_an_event_cancelled_before_the_lock_writes_nothing(user, monkeypatch):
    event = EventFactory()
    change_the_event_while_the_booking_is_written(monkeypatch, status=EventStatus.CANCELLED)

    with pytest.raises(EventNotBookable):
        services.book_event(user=user, event_id=event.pk)

    assert not Booking.objects.exists()
    assert not BookingAudit.objects.exists()
    assert claimed(event) == 0


# --- the deadlock between the two ways, on PostgreSQL ------------------------------------------


def wait_until_a_backend_waits_for_a_lock(timeout: float = 10) -> None:
    """Poll, on this thread's own connection, until another session waits for a row lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no session waited for a lock")


def run_in_thread(target, results: dict, key: str) -> threading.Thread:
    def run():
        try:
            results[key] = target()
        except Exception as error:  # the test inspects it
            results[key] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def race_the_api_against(other, ready: threading.Event, go: threading.Event, person, event):
    """Run `other` (it sets `ready`, then waits for `go`), then the person's POST /bookings/;
    once the API's request waits for a lock, let `other` go on. Both outcomes."""
    results: dict = {}
    other_thread = run_in_thread(other, results, "other")
    assert ready.wait(timeout=10)
    api = run_in_thread(
        lambda: client_for(person).post("/bookings/", {"event_id": event.pk}, format="json"),
        results,
        "api",
    )
    wait_until_a_backend_waits_for_a_lock()
    go.set()
    other_thread.join(timeout=60)
    api.join(timeout=60)
    assert isinstance(results["other"], Booking), results["other"]
    return results["other"], results["api"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_lock_last_way_loses_a_deadlock_and_answers_already_booked():
    """The exact way holds the event and writes the person's booking; the lock-last way,
    holding its own written booking, waits for the event: each waits for the other."""
    event = EventFactory(capacity=5)
    person = UserFactory()
    ready, go = threading.Event(), threading.Event()

    def exact_way_pausing_before_its_insert():
        with service_transaction():
            services._claim_a_seat(event.pk)  # holds the event's lock
            ready.set()
            assert go.wait(timeout=30)  # the API's booking is written, waiting to claim
            return services._write_booking(
                user=person, event=Event.objects.get(pk=event.pk), now=timezone.now()
            )

    _, response = race_the_api_against(
        exact_way_pausing_before_its_insert, ready, go, person, event
    )

    assert (response.status_code, response.json()["code"]) == (409, "already_booked")
    assert Booking.objects.filter(user=person, event=event).count() == 1
    assert claimed(event) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_exact_way_loses_a_deadlock_tries_again_and_answers_already_booked():
    """The lock-last way has written the person's booking; the exact way (the event looks
    full: a lapsed hold) holds the event and waits to write the same person's booking."""
    event = EventFactory(capacity=1, price=Decimal("20"))
    lapsed = services.book_event(user=UserFactory(), event_id=event.pk)
    Booking.objects.filter(pk=lapsed.pk).update(hold_expires_at=timezone.now() - timedelta(1))
    person = UserFactory()
    ready, go = threading.Event(), threading.Event()

    def lock_last_way_pausing_before_its_claim():
        with service_transaction():
            booking = services._write_booking(
                user=person, event=Event.objects.get(pk=event.pk), now=timezone.now()
            )
            ready.set()
            assert go.wait(timeout=30)  # the API holds the event, waiting to insert
            services._claim_a_seat(event.pk)
            return booking

    _, response = race_the_api_against(
        lock_last_way_pausing_before_its_claim, ready, go, person, event
    )

    assert (response.status_code, response.json()["code"]) == (409, "already_booked")
    assert Booking.objects.filter(user=person, event=event).count() == 1
    assert_counters_match_bookings()
