"""Lapsed holds are marked `expired` by sweeps: one task per period and process, not per hold."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from bookings import services, tasks
from bookings.models import Booking, BookingAudit, BookingStatus
from conftest import run_tasks
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

SWEEP = "bookings.tasks.expire_lapsed_holds"


@pytest.fixture(autouse=True)
def _sweep_every_minute(settings):
    settings.HOLD_SWEEP_SECONDS = 60
    settings.BOOKING_HOLD_MINUTES = 30


@pytest.fixture
def paid_event():
    return EventFactory(price=Decimal("20.00"), capacity=10)


def at_minute(second: int, minutes_later: int = 0):
    """Travel (frozen) to `second` seconds past the current minute, `minutes_later` on."""
    start = timezone.now().replace(second=second, microsecond=0)
    return time_machine.travel(start + timedelta(minutes=minutes_later), tick=False)


def sweeps() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=SWEEP).order_by("run_after"))


def statuses(*bookings: Booking) -> list[str]:
    by_pk = dict(Booking.objects.values_list("pk", "status"))
    return [by_pk[booking.pk] for booking in bookings]


def seats_left(event: Event) -> int:
    return Event.objects.with_seats_left().get(pk=event.pk).seats_left


def test_a_lapsed_hold_frees_its_seat_at_once_and_is_expired_at_its_periods_end(paid_event):
    with at_minute(10):
        booking = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    lapse = booking.hold_expires_at
    period_end = lapse.replace(second=0) + timedelta(minutes=1)  # lapse is at hh:mm:10
    assert [sweep.run_after for sweep in sweeps()] == [period_end]

    run_tasks()
    with time_machine.travel(lapse + timedelta(seconds=30), tick=False):
        run_tasks()  # lapsed, but its sweep is not due yet
        assert statuses(booking) == [BookingStatus.PENDING]
        assert seats_left(paid_event) == 10  # the seat is free all the same

    with time_machine.travel(period_end, tick=False):
        run_tasks()
    assert statuses(booking) == [BookingStatus.EXPIRED]
    audit = BookingAudit.objects.get(booking=booking, change="booking.expired")
    assert audit.reason == "hold expired" and audit.created_at == period_end


# Committed for real: a process remembers a sweep only once its transaction committed.
@pytest.mark.django_db(transaction=True)
def test_holds_lapsing_in_one_period_share_one_sweep(paid_event):
    with at_minute(5):
        first = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    with at_minute(50):
        second = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    with at_minute(5, minutes_later=1):
        next_period = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    free = EventFactory(price=Decimal("0"))
    services.book_event(user=UserFactory(), event_id=free.pk)  # no hold, no sweep

    due = [sweep.run_after for sweep in sweeps()]
    assert due == [
        first.hold_expires_at.replace(second=0) + timedelta(minutes=1),
        next_period.hold_expires_at.replace(second=0) + timedelta(minutes=1),
    ]
    assert DBTaskResult.objects.count() == 4  # the two sweeps and the free booking's 2 emails

    with time_machine.travel(due[0], tick=False):
        run_tasks()
    assert statuses(first, second, next_period) == ["expired", "expired", "pending"]
    with time_machine.travel(due[1], tick=False):
        run_tasks()
    assert statuses(next_period) == ["expired"]


@pytest.mark.django_db(transaction=True)
def test_a_booking_that_rolls_back_leaves_its_period_without_a_remembered_sweep(
    paid_event, monkeypatch
):
    def fail_once(event_id):
        monkeypatch.undo()
        raise RuntimeError("the connection dropped")

    with at_minute(20):
        monkeypatch.setattr(services, "_claim_a_seat", fail_once)
        with pytest.raises(RuntimeError):
            services.book_event(user=UserFactory(), event_id=paid_event.pk)
        assert sweeps() == []  # rolled back with the booking

        booking = services.book_event(user=UserFactory(), event_id=paid_event.pk)

    assert len(sweeps()) == 1
    with time_machine.travel(booking.hold_expires_at + timedelta(minutes=1), tick=False):
        run_tasks()
    assert statuses(booking) == [BookingStatus.EXPIRED]


def test_a_sweep_that_finds_a_full_batch_enqueues_the_next_at_once(paid_event, monkeypatch):
    monkeypatch.setattr(tasks, "SWEEP_BATCH", 2)
    with at_minute(0):
        held = [services.book_event(user=UserFactory(), event_id=paid_event.pk) for _ in range(3)]
    DBTaskResult.objects.all().delete()

    with time_machine.travel(held[0].hold_expires_at + timedelta(seconds=1), tick=False):
        assert tasks.expire_lapsed_holds.call() == 2
        assert DBTaskResult.objects.ready().filter(task_path=SWEEP).count() == 1
        run_tasks()

    assert statuses(*held) == ["expired"] * 3
    assert len(sweeps()) == 1  # the last batch was not full: nothing more enqueued


def test_a_sweep_leaves_paid_confirmed_and_unlapsed_bookings_alone(paid_event):
    with at_minute(0):
        lapsing = services.book_event(user=UserFactory(), event_id=paid_event.pk)
        paid = services.book_event(user=UserFactory(), event_id=paid_event.pk)
        services.mark_paid(booking_id=paid.pk, reason="paid at the desk")
    with at_minute(0, minutes_later=10):
        fresh = services.book_event(user=UserFactory(), event_id=paid_event.pk)

    with time_machine.travel(lapsing.hold_expires_at + timedelta(minutes=1), tick=False):
        run_tasks()
    assert statuses(lapsing, paid, fresh) == ["expired", "confirmed", "pending"]


def test_an_expiry_task_enqueued_before_sweeps_still_runs(paid_event):
    booking = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    DBTaskResult.objects.all().delete()
    tasks.expire_hold.using(run_after=booking.hold_expires_at).enqueue(booking.pk)

    with time_machine.travel(booking.hold_expires_at + timedelta(seconds=1), tick=False):
        run_tasks()
    assert statuses(booking) == [BookingStatus.EXPIRED]
    assert DBTaskResult.objects.get(task_path="bookings.tasks.expire_hold").status == "SUCCESSFUL"


def test_the_remembered_periods_forget_the_past(monkeypatch):
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    monkeypatch.setattr(services.time, "time", lambda: now)
    services._sweeps_enqueued.update({int(now) - 120, int(now) - 60, int(now) + 60})

    services._remember_sweep(int(now) + 120)

    assert services._sweeps_enqueued == {int(now) + 60, int(now) + 120}
