"""The bookings services directly: constraints, payment and refund bookkeeping."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.tests.factories import UserFactory
from bookings import services
from bookings.exceptions import CancellationCutoffPassed, NotPayable
from bookings.models import Booking, BookingAudit, BookingStatus, PaymentStatus, Refund
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def owes_refund(booking: Booking) -> bool:
    """A refund of the booking's money is owed and waiting for the worker."""
    return Refund.objects.filter(booking=booking, status="pending").exists()


def later(minutes: int):
    return time_machine.travel(timezone.now() + timedelta(minutes=minutes))


def test_database_refuses_a_second_active_booking_for_one_user_and_event(user):
    event = EventFactory()
    first = services.book_event(user=user, event_id=event.pk)
    duplicate = Booking(
        user=user,
        event=event,
        facilitator=event.facilitator,
        status=BookingStatus.CONFIRMED,
        payment_status=PaymentStatus.PAID,
        amount=event.price,
        currency=event.currency,
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()

    Booking.objects.filter(pk=first.pk).update(status=BookingStatus.CANCELLED)
    duplicate.save()  # a cancelled booking does not block a new one
    assert Booking.objects.filter(user=user, event=event).count() == 2


def test_mark_paid_confirms_a_held_booking_once(user):
    booking = services.book_event(user=user, event_id=EventFactory().pk)

    paid = services.mark_paid(booking_id=booking.pk, reason="stripe checkout completed")
    replay = services.mark_paid(booking_id=booking.pk, reason="stripe checkout completed")

    assert (paid.status, paid.payment_status) == (BookingStatus.CONFIRMED, PaymentStatus.PAID)
    assert replay.version == paid.version == 2
    assert BookingAudit.objects.filter(booking=booking).count() == 2
    assert not owes_refund(paid)


def test_payment_after_lapsed_hold_confirms_when_a_seat_is_free(user):
    event = EventFactory(capacity=1)
    booking = services.book_event(user=user, event_id=event.pk)

    with later(45):
        paid = services.mark_paid(booking_id=booking.pk)

    assert (paid.status, paid.payment_status) == (BookingStatus.CONFIRMED, PaymentStatus.PAID)
    assert "seat was still free" in BookingAudit.objects.filter(booking=booking).last().reason


def test_payment_after_lapsed_hold_without_a_seat_is_recorded_for_refund(user):
    event = EventFactory(capacity=1)
    booking = services.book_event(user=user, event_id=event.pk)
    with later(45):
        services.book_event(user=UserFactory(), event_id=event.pk)  # took the freed seat
        paid = services.mark_paid(booking_id=booking.pk)

    assert paid.status == BookingStatus.EXPIRED
    assert paid.payment_status == PaymentStatus.PAID
    assert owes_refund(paid)
    confirmed_or_held = Booking.objects.filter(event=event).holding_seats(timezone.now()).count()
    assert confirmed_or_held == 1  # never oversold


def test_payment_for_cancelled_event_is_not_confirmed(user):
    event = EventFactory()
    booking = services.book_event(user=user, event_id=event.pk)
    services.cancel_booking(booking=booking, by=user)
    event.status = "cancelled"
    event.save()

    paid = services.mark_paid(booking_id=booking.pk)

    assert paid.status == BookingStatus.CANCELLED
    assert owes_refund(paid)


def test_payment_for_an_expired_hold_after_rebooking_keeps_the_new_booking(user):
    event = EventFactory(capacity=5)
    old = services.book_event(user=user, event_id=event.pk)
    with later(45):
        new = services.book_event(user=user, event_id=event.pk)
        paid_old = services.mark_paid(booking_id=old.pk)

    assert paid_old.status == BookingStatus.EXPIRED and owes_refund(paid_old)
    new.refresh_from_db()
    assert new.status == BookingStatus.PENDING


def test_mark_refunded_cancels_and_is_idempotent(user):
    booking = services.book_event(user=user, event_id=EventFactory().pk)
    services.mark_paid(booking_id=booking.pk)

    refunded = services.mark_refunded(booking_id=booking.pk, reason="refund issued")
    again = services.mark_refunded(booking_id=booking.pk, reason="charge.refunded webhook")

    assert (refunded.status, refunded.payment_status) == (
        BookingStatus.CANCELLED,
        PaymentStatus.REFUNDED,
    )
    assert again.version == refunded.version
    assert refunded.refunded_at is not None


def test_unpaid_booking_cannot_be_refunded(user):
    booking = services.book_event(user=user, event_id=EventFactory().pk)

    with pytest.raises(NotPayable):
        services.mark_refunded(booking_id=booking.pk)


def test_cancelling_a_paid_booking_releases_the_seat_and_owes_a_refund(user):
    event = EventFactory(price=Decimal("5"), capacity=1)
    booking = services.book_event(user=user, event_id=event.pk)
    services.mark_paid(booking_id=booking.pk)

    cancelled = services.cancel_booking(booking=booking, by=user)

    assert (cancelled.status, cancelled.payment_status) == ("cancelled", "paid")
    refund = cancelled.refunds.get()
    assert (refund.status, refund.amount, refund.payment) == ("pending", Decimal("5.00"), None)
    assert services.book_event(user=UserFactory(), event_id=event.pk).status == "pending"


def test_paid_booking_cannot_be_cancelled_after_the_cutoff(user, settings):
    settings.CANCELLATION_CUTOFF_HOURS = 24
    event = EventFactory(starts_at=timezone.now() + timedelta(hours=23))
    booking = services.book_event(user=user, event_id=event.pk)
    services.mark_paid(booking_id=booking.pk)

    with pytest.raises(CancellationCutoffPassed, match="24 hours"):
        services.cancel_booking(booking=booking, by=user)

    booking.refresh_from_db()
    assert booking.status == "confirmed"
    assert not Refund.objects.exists()


def test_expire_hold_leaves_a_paid_booking_alone(user):
    booking = services.book_event(user=user, event_id=EventFactory().pk)
    services.mark_paid(booking_id=booking.pk)

    with later(45):
        assert services.expire_hold(booking_id=booking.pk) is False

    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
