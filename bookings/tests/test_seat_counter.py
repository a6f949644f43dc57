"""The event's `seats_claimed` counter: every transition keeps it equal to the bookings."""

import importlib
import threading
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import UserFactory
from ahoum.errors import DomainError
from bookings import services
from bookings.models import Booking, BookingStatus
from bookings.services import event_cancellation
from conftest import client_for, run_tasks
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def assert_counters_match_bookings() -> None:
    """The counter as the services left it equals a count of the bookings themselves."""
    kept = dict(Event.objects.values_list("pk", "seats_claimed"))
    Event.objects.recount_claimed_seats()
    assert dict(Event.objects.values_list("pk", "seats_claimed")) == kept


def claimed(event) -> int:
    return Event.objects.values_list("seats_claimed", flat=True).get(pk=event.pk)


def later(minutes: int):
    return time_machine.travel(timezone.now() + timedelta(minutes=minutes))


def test_every_transition_moves_the_counter_with_the_bookings(staff):
    paid_event, free_event = EventFactory(capacity=3), EventFactory(capacity=3, price=0)
    ann, bob, cat = UserFactory(), UserFactory(), UserFactory()

    free = services.book_event(user=ann, event_id=free_event.pk)
    held = services.book_event(user=ann, event_id=paid_event.pk)
    to_pay = services.book_event(user=bob, event_id=paid_event.pk)
    assert (claimed(free_event), claimed(paid_event)) == (1, 2)

    services.cancel_booking(booking=free, by=ann)
    services.mark_paid(booking_id=to_pay.pk)  # pending -> confirmed: no change
    assert (claimed(free_event), claimed(paid_event)) == (0, 2)
    assert_counters_match_bookings()

    with later(31):
        # Ann's hold lapsed: it still counts in the counter, not in the seats left.
        event = Event.objects.with_seats_left().get(pk=paid_event.pk)
        assert (event.seats_claimed, event.seats_left, event.seats_taken()) == (2, 2, 1)
        services.expire_hold(booking_id=held.pk)
        assert claimed(paid_event) == 1
        services.renew_hold(booking=Booking.objects.get(pk=held.pk), by=ann)  # expired -> held
        assert claimed(paid_event) == 2
    services.release_hold(booking_id=held.pk, reason="checkout expired")
    assert claimed(paid_event) == 1

    late = services.book_event(user=cat, event_id=paid_event.pk)
    with later(31):
        services.expire_hold(booking_id=late.pk)
        services.mark_paid(booking_id=late.pk)  # paid after the lapse, a seat was free
    assert Booking.objects.get(pk=late.pk).status == BookingStatus.CONFIRMED
    assert claimed(paid_event) == 2

    services.mark_refunded(booking_id=late.pk)  # confirmed -> cancelled
    assert claimed(paid_event) == 1
    event_cancellation.cancel_event(event=paid_event, by=staff, reason="venue closed")
    run_tasks()  # the worker settles the cancelled event's bookings
    assert claimed(paid_event) == 0
    assert_counters_match_bookings()


def test_rebooking_over_an_own_lapsed_hold_counts_one_seat(user):
    event = EventFactory(capacity=1)
    services.book_event(user=user, event_id=event.pk)

    with later(31):
        again = services.book_event(user=user, event_id=event.pk)

    assert again.status == BookingStatus.PENDING
    assert claimed(event) == 1
    assert_counters_match_bookings()


def test_lapsed_holds_do_not_make_a_full_looking_event_sold_out():
    event = EventFactory(capacity=2)
    lapsed = [services.book_event(user=UserFactory(), event_id=event.pk) for _ in range(2)]

    with later(31):
        booking = services.book_event(user=UserFactory(), event_id=event.pk)

    assert booking.status == BookingStatus.PENDING
    # The full counter made the booking mark the lapsed holds expired: only the new one counts.
    assert list(Booking.objects.filter(pk__in=[b.pk for b in lapsed]).values_list(
        "status", flat=True)) == [BookingStatus.EXPIRED] * 2  # fmt: skip
    assert claimed(event) == 1


def test_saving_an_event_read_before_a_booking_keeps_the_booking_counted(user):
    event = EventFactory(capacity=5)
    stale = Event.objects.get(pk=event.pk)  # as the admin's form holds it
    services.book_event(user=user, event_id=event.pk)

    stale.title = "Renamed"
    stale.save()

    event.refresh_from_db()
    assert (event.title, event.seats_claimed) == ("Renamed", 1)


def test_migration_counts_the_bookings_that_existed_before_the_counter(user):
    event = EventFactory()
    services.book_event(user=user, event_id=event.pk)
    services.book_event(user=UserFactory(), event_id=event.pk)
    services.cancel_booking(booking=Booking.objects.filter(user=user).get(), by=user)
    Event.objects.update(seats_claimed=0)

    migration = importlib.import_module("events.migrations.0002_seats_claimed")
    migration.count_claimed_seats(apps, schema_editor=None)

    assert claimed(event) == 1


@pytest.mark.django_db(transaction=True)
def test_cancelling_while_booking_again_never_deadlocks_or_miscounts():
    """One person cancels a booking while a second request books the same event again.

    Booking locks the event, then that person's active booking; cancelling must take the
    same order. The other order deadlocks on PostgreSQL (the `postgres` CI run), which
    answers 503 or 500 here instead of 200 and 201/409.
    """
    event = EventFactory(capacity=50, price=0)
    person = UserFactory()
    outcomes: Counter = Counter()

    def send(client, method, path, data, key, barrier):
        try:
            barrier.wait(timeout=30)
            response = getattr(client, method)(path, data, format="json")
            outcomes[(key, response.status_code)] += 1
        finally:
            connection.close()

    rounds = 15
    for _ in range(rounds):
        booking = services.book_event(user=person, event_id=event.pk)
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(
                target=send,
                args=(client_for(person), "post", f"/bookings/{booking.pk}/cancel", None,
                      "cancel", barrier),
            ),
            threading.Thread(
                target=send,
                args=(client_for(person), "post", "/bookings/", {"event_id": event.pk},
                      "book", barrier),
            ),
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        for rebooked in Booking.objects.active().filter(user=person):  # the 201 case
            services.cancel_booking(booking=rebooked, by=person)

    assert outcomes[("cancel", 200)] == rounds
    assert outcomes[("book", 201)] + outcomes[("book", 409)] == rounds
    assert claimed(event) == 0
    assert_counters_match_bookings()


def test_a_refused_booking_leaves_the_counter_as_it_was(user, facilitator, staff):
    full = EventFactory(capacity=1)
    services.book_event(user=UserFactory(), event_id=full.pk)
    own = EventFactory(facilitator=facilitator)
    gone = EventFactory()
    event_cancellation.cancel_event(event=gone, by=staff, reason="")
    mine = EventFactory()
    services.book_event(user=user, event_id=mine.pk)

    for person, event in [(user, full), (facilitator, own), (user, gone), (user, mine)]:
        with pytest.raises(DomainError):
            services.book_event(user=person, event_id=event.pk)

    assert [claimed(event) for event in (full, own, gone, mine)] == [1, 0, 0, 1]
    assert_counters_match_bookings()
