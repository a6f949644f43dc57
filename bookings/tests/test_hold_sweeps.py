"""Lapsed holds are marked `expired` by the scheduler (`manage.py sweep`), not per booking.

A hold stops counting as a seat the moment it lapses; the scheduler's next run marks it
`expired` (which announces `booking.expired`). A booking writes no task row for that.
"""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from bookings import services, tasks
from bookings.models import Booking, BookingAudit, BookingStatus
from conftest import run_tasks
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_event():
    return EventFactory(price=Decimal("20.00"), capacity=10)


def statuses(*bookings: Booking) -> list[str]:
    by_pk = dict(Booking.objects.values_list("pk", "status"))
    return [by_pk[booking.pk] for booking in bookings]


def seats_left(event: Event) -> int:
    return Event.objects.with_seats_left().get(pk=event.pk).seats_left


def sweep() -> str:
    out = StringIO()
    call_command("sweep", stdout=out)
    return out.getvalue()


def test_a_hold_writes_no_task_row(paid_event):
    services.book_event(user=UserFactory(), event_id=paid_event.pk)
    assert not DBTaskResult.objects.exists()


def test_a_lapsed_hold_frees_its_seat_at_once_and_the_scheduler_marks_it_expired(paid_event):
    booking = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    assert seats_left(paid_event) == 9

    with time_machine.travel(booking.hold_expires_at + timedelta(seconds=1), tick=False):
        assert seats_left(paid_event) == 10  # free at once
        assert statuses(booking) == [BookingStatus.PENDING]
        assert "holds expired: 1" in sweep()

    assert statuses(booking) == [BookingStatus.EXPIRED]
    assert BookingAudit.objects.filter(booking=booking, change="booking.expired").count() == 1
    assert seats_left(paid_event) == 10


def test_the_scheduler_running_again_changes_nothing(paid_event):
    booking = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    with time_machine.travel(booking.hold_expires_at + timedelta(seconds=1), tick=False):
        sweep()
        assert "holds expired: 0" in sweep()
    assert BookingAudit.objects.filter(booking=booking).count() == 2  # booked, expired


def test_the_scheduler_expires_every_lapsed_hold_in_batches(paid_event, monkeypatch):
    held = [services.book_event(user=UserFactory(), event_id=paid_event.pk) for _ in range(3)]
    real = services.expire_stale_holds
    monkeypatch.setattr(
        services, "expire_stale_holds", lambda **kwargs: real(**{**kwargs, "limit": 2})
    )

    with time_machine.travel(held[-1].hold_expires_at + timedelta(seconds=1), tick=False):
        assert "holds expired: 3" in sweep()
    assert statuses(*held) == ["expired"] * 3


def test_the_scheduler_leaves_paid_confirmed_and_unlapsed_bookings_alone(paid_event):
    lapsing = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    paid = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    services.mark_paid(booking_id=paid.pk, reason="paid at the desk")
    free = services.book_event(user=UserFactory(), event_id=EventFactory(price=0).pk)
    with time_machine.travel(lapsing.hold_expires_at - timedelta(minutes=5), tick=False):
        fresh = services.book_event(user=UserFactory(), event_id=paid_event.pk)

    with time_machine.travel(lapsing.hold_expires_at + timedelta(seconds=1), tick=False):
        sweep()
    assert statuses(lapsing, paid, free, fresh) == ["expired", "confirmed", "confirmed", "pending"]


@pytest.mark.parametrize("enqueue", ["expire_lapsed_holds", "expire_hold"])
def test_expiry_tasks_enqueued_by_earlier_versions_still_run(paid_event, enqueue):
    booking = services.book_event(user=UserFactory(), event_id=paid_event.pk)
    if enqueue == "expire_hold":
        tasks.expire_hold.using(run_after=booking.hold_expires_at).enqueue(booking.pk)
    else:
        tasks.expire_lapsed_holds.using(run_after=booking.hold_expires_at).enqueue()

    with time_machine.travel(booking.hold_expires_at + timedelta(seconds=1), tick=False):
        run_tasks()
    assert statuses(booking) == [BookingStatus.EXPIRED]
    assert DBTaskResult.objects.get(task_path=f"bookings.tasks.{enqueue}").status == "SUCCESSFUL"
