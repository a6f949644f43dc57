"""The one booking path (`bookings.services.booking.book_event`): lock, check, write.

The event's row is locked first; what the booking is checked against (bookable, the person's
own booking, a free seat) is read under that lock; then the booking, its seat and its audit
row are written, all in one transaction. A refusal writes nothing.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from ahoum.db import service_transaction
from ahoum.errors import TryAgain
from bookings import services
from bookings.exceptions import AlreadyBooked, EventNotBookable, OwnEvent, SoldOut
from bookings.models import Booking, BookingAudit, BookingStatus
from bookings.tests.test_seat_counter import assert_counters_match_bookings, claimed
from conftest import client_for
from events.models import Event, EventStatus
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT", "SET LOCAL")


def statements(captured) -> list[str]:
    return [q["sql"] for q in captured if not q["sql"].upper().startswith(TRANSACTION_CONTROL)]


def lapse(booking: Booking) -> None:
    Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(1))


def test_a_hold_locks_the_event_first_then_checks_then_writes(user):
    event = EventFactory(price=Decimal("20"))

    with CaptureQueriesContext(connection) as captured:
        booking = services.book_event(user=user, event_id=event.pk)

    sql = statements(captured)
    # The hot path's statements, one each (the regression guard for the benchmark's spread):
    # the event locked, the booking (the unique index refuses a second active one: no query
    # for it), its attendee (one INSERT for all its seats), its seats, its audit row. No task
    # row: lapsed holds are marked expired by the scheduler (manage.py sweep).
    assert [statement.split()[:3] for statement in sql] == [
        ["SELECT", '"events_event"."id",', '"events_event"."title",'],
        ["INSERT", "INTO", '"bookings_booking"'],
        ["INSERT", "INTO", '"bookings_attendee"'],
        ["UPDATE", '"events_event"', "SET"],
        ["INSERT", "INTO", '"bookings_bookingaudit"'],
    ]
    if connection.vendor == "postgresql":
        assert sql[0].endswith("FOR UPDATE")
    assert booking.event.seats_claimed == 1  # the response shows the event as locked
    assert claimed(event) == 1


def test_a_sold_out_event_is_refused_and_nothing_is_written(user):
    event = EventFactory(capacity=1)
    services.book_event(user=UserFactory(), event_id=event.pk)

    with pytest.raises(SoldOut):
        services.book_event(user=user, event_id=event.pk)

    assert not Booking.objects.filter(user=user).exists()
    assert BookingAudit.objects.count() == 1
    assert claimed(event) == 1


def test_a_full_looking_event_marks_its_lapsed_holds_expired_and_books_their_seat(user):
    event = EventFactory(capacity=1, price=Decimal("20"))
    lapsed = services.book_event(user=UserFactory(), event_id=event.pk)
    lapse(lapsed)

    booking = services.book_event(user=user, event_id=event.pk)

    assert booking.status == BookingStatus.PENDING
    lapsed.refresh_from_db()
    assert lapsed.status == BookingStatus.EXPIRED
    assert BookingAudit.objects.filter(booking=lapsed, change="booking.expired").count() == 1
    assert claimed(event) == 1
    assert_counters_match_bookings()


def test_a_full_event_whose_lapsed_hold_was_paid_in_time_stays_sold_out(user):
    """Only unpaid lapsed holds free their seats; a paid one is the worker's to settle."""
    event = EventFactory(capacity=1, price=Decimal("20"))
    held = services.book_event(user=UserFactory(), event_id=event.pk)
    services.mark_paid(booking_id=held.pk)

    with pytest.raises(SoldOut):
        services.book_event(user=user, event_id=event.pk)
    assert claimed(event) == 1


def test_the_persons_own_lapsed_hold_is_expired_and_they_book_again(user):
    event = EventFactory(capacity=1, price=Decimal("20"))
    first = services.book_event(user=user, event_id=event.pk)
    lapse(first)

    second = services.book_event(user=user, event_id=event.pk)

    first.refresh_from_db()
    assert first.status == BookingStatus.EXPIRED
    assert second.pk != first.pk and second.holds_seat()
    assert claimed(event) == 1


def test_a_second_booking_of_the_same_person_is_already_booked(user):
    event = EventFactory()
    first = services.book_event(user=user, event_id=event.pk)

    with pytest.raises(AlreadyBooked) as refused:
        services.book_event(user=user, event_id=event.pk)

    assert refused.value.extra == {"booking_id": first.pk}
    assert claimed(event) == 1


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"status": EventStatus.CANCELLED}, EventNotBookable),
        ({"starts_at": timezone.now() - timedelta(minutes=1)}, EventNotBookable),
    ],
    ids=["cancelled", "started"],
)
def test_an_event_that_cannot_be_booked_writes_nothing(user, change, error):
    event = EventFactory()
    Event.objects.filter(pk=event.pk).update(**change)

    with pytest.raises(error):
        services.book_event(user=user, event_id=event.pk)

    assert not Booking.objects.exists()
    assert claimed(event) == 0


def test_a_facilitator_cannot_book_their_own_event():
    event = EventFactory()
    with pytest.raises(OwnEvent):
        services.book_event(user=event.facilitator, event_id=event.pk)
    assert not Booking.objects.exists()


# --- under real concurrency, on PostgreSQL ----------------------------------------------------


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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_person_booking_twice_at_once_gets_one_booking():
    event = EventFactory(capacity=5)
    person = UserFactory()
    client = client_for(person)
    start = threading.Barrier(8)
    results: dict = {}

    def book():
        start.wait(timeout=10)
        return client.post("/bookings/", {"event_id": event.pk}, format="json")

    threads = [run_in_thread(book, results, str(n)) for n in range(8)]
    for thread in threads:
        thread.join(timeout=60)

    codes = sorted(response.status_code for response in results.values())
    assert codes == [201] + [409] * 7, codes
    assert {r.json()["code"] for r in results.values() if r.status_code == 409} == {
        "already_booked"
    }
    assert Booking.objects.filter(user=person, event=event).count() == 1
    assert_counters_match_bookings()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_booking_waits_for_a_held_event_lock_only_so_long_then_answers_503(settings):
    settings.LOCK_TIMEOUT_MS = 200
    event = EventFactory(capacity=5)
    locked, release = threading.Event(), threading.Event()
    results: dict = {}

    def hold_the_event_lock():
        with service_transaction():
            Event.objects.select_for_update().get(pk=event.pk)
            locked.set()
            assert release.wait(timeout=30)

    holder = run_in_thread(hold_the_event_lock, results, "holder")
    assert locked.wait(timeout=10)
    started = time.monotonic()
    response = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")
    waited = time.monotonic() - started
    release.set()
    holder.join(timeout=30)

    assert response.status_code == 503
    assert response.json()["code"] == TryAgain.code
    assert response["Retry-After"] == "1"
    assert waited < 5  # bounded by LOCK_TIMEOUT_MS, not by the holder
    assert not Booking.objects.exists()
    assert claimed(event) == 0


def test_a_lapsed_hold_is_not_renewed_over_a_capacity_lowered_meanwhile(user):
    """The counter holds the lapsed hold's seat only while it is within capacity."""
    from events import services as event_services

    event = EventFactory(capacity=2, price=Decimal("20"))
    taken = services.book_event(user=UserFactory(), event_id=event.pk)
    services.mark_paid(booking_id=taken.pk)
    lapsed = services.book_event(user=user, event_id=event.pk)
    lapse(lapsed)
    event_services.update_event(event=event, by=event.facilitator, capacity=1)

    with pytest.raises(SoldOut):
        services.renew_hold(booking=Booking.objects.get(pk=lapsed.pk), by=user)
    late = services.mark_paid(booking_id=lapsed.pk)  # paid after its hold ended

    assert (late.status, late.payment_status) == ("expired", "paid")  # owed back, no seat
    assert claimed(event) == 1
    assert_counters_match_bookings()


def test_a_lapsed_hold_renewed_within_capacity_keeps_its_counted_seat(user):
    event = EventFactory(capacity=1, price=Decimal("20"))
    held = services.book_event(user=user, event_id=event.pk)
    lapse(held)

    renewed = services.renew_hold(booking=Booking.objects.get(pk=held.pk), by=user)

    assert renewed.holds_seat() and claimed(event) == 1
    assert_counters_match_bookings()
