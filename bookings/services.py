"""Every change of a booking's state. Each function is one transaction that takes its lock
first, checks, writes the booking and its audit row, and returns.

Lock order, everywhere: the event row, then the booking row. The event row guards the
capacity invariant (seats held + confirmed <= capacity), so whoever may take a seat locks it;
releasing a seat never breaks the invariant and locks only the booking.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ahoum.db import service_transaction
from bookings.exceptions import (
    AlreadyBooked,
    EventNotBookable,
    EventNotFound,
    NotCancellable,
    OwnEvent,
    SoldOut,
)
from bookings.models import ACTIVE_STATUSES, Booking, BookingAudit, BookingStatus, PaymentStatus
from events.models import Event, EventStatus

STATUS_TIMESTAMPS = {
    BookingStatus.CONFIRMED: "confirmed_at",
    BookingStatus.CANCELLED: "cancelled_at",
    BookingStatus.EXPIRED: "expired_at",
}
PAYMENT_TIMESTAMPS = {PaymentStatus.PAID: "paid_at", PaymentStatus.REFUNDED: "refunded_at"}


def book_event(*, user, event_id: int) -> Booking:
    """Confirm a free seat or hold a paid one for `user`; never more seats than capacity."""
    now = timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        if event.status != EventStatus.SCHEDULED:
            raise EventNotBookable("This event has been cancelled.")
        if event.starts_at <= now:
            raise EventNotBookable("This event has already started.")
        if event.facilitator_id == user.pk:
            raise OwnEvent()

        existing = Booking.objects.select_for_update().filter(user=user, event=event).active()
        for booking in existing:
            if booking.holds_seat(now):
                raise AlreadyBooked(booking_id=booking.pk)
            # A lapsed hold still blocks the unique constraint until it is marked expired.
            _transition(booking, status=BookingStatus.EXPIRED, reason="hold expired", now=now)

        if _seats_taken(event, now) >= event.capacity:
            raise SoldOut()

        booking = Booking(
            user=user,
            event=event,
            facilitator_id=event.facilitator_id,
            amount=event.price,
            currency=event.currency,
            created_at=now,
        )
        if event.is_free:
            booking.status = BookingStatus.CONFIRMED
            booking.payment_status = PaymentStatus.FREE
            booking.confirmed_at = now
        else:
            booking.status = BookingStatus.PENDING
            booking.payment_status = PaymentStatus.UNPAID
            booking.hold_expires_at = now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
        booking.save()
        _audit(
            booking, from_status="", from_payment_status="", actor=user, reason="booked", now=now
        )
    return booking


def cancel_booking(*, booking: Booking, by, reason: str = "cancelled by attendee") -> Booking:
    """Cancel an unpaid hold or a free booking; its seat is free again at once."""
    now = timezone.now()
    with service_transaction():
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        if booking.status not in ACTIVE_STATUSES:
            raise NotCancellable(f"This booking is already {booking.status}.")
        if booking.payment_status == PaymentStatus.PAID:
            raise NotCancellable(
                "This booking is paid; cancelling it needs a refund, which is not available yet."
            )
        _transition(booking, status=BookingStatus.CANCELLED, actor=by, reason=reason, now=now)
    return booking


def expire_hold(*, booking_id: int, now: datetime | None = None) -> bool:
    """Mark one lapsed, unpaid hold `expired`. False if it was paid or changed meanwhile."""
    now = now or timezone.now()
    with service_transaction():
        booking = Booking.objects.select_for_update().filter(pk=booking_id).first()
        if booking is None or booking.status != BookingStatus.PENDING:
            return False
        if booking.payment_status != PaymentStatus.UNPAID or booking.hold_expires_at > now:
            return False
        _transition(booking, status=BookingStatus.EXPIRED, reason="hold expired", now=now)
    return True


def expire_stale_holds(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Mark lapsed holds `expired` (bookkeeping: they already stopped counting as seats)."""
    now = now or timezone.now()
    stale = Booking.objects.stale_holds(now).values_list("pk", flat=True)[:limit]
    return sum(expire_hold(booking_id=pk, now=now) for pk in list(stale))


def mark_paid(*, booking_id: int, actor=None, reason: str = "payment received") -> Booking:
    """Record that the booking's amount was received, and confirm it if it has a seat.

    A payment can arrive after its hold lapsed (or the booking was cancelled meanwhile): the
    booking is confirmed when a seat is still free, and otherwise stays unconfirmed but
    `paid`, which tells the caller to refund it. Money is always recorded, never dropped.
    Recording the same payment twice changes nothing.
    """
    now = timezone.now()
    with service_transaction():
        event_id = Booking.objects.values_list("event_id", flat=True).get(pk=booking_id)
        event = Event.objects.select_for_update().get(pk=event_id)
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.payment_status != PaymentStatus.UNPAID:
            return booking  # already paid, refunded or free: a replay

        if booking.holds_seat(now):
            _transition(
                booking,
                status=BookingStatus.CONFIRMED,
                payment_status=PaymentStatus.PAID,
                actor=actor,
                reason=reason,
                now=now,
            )
        elif _can_retake_seat(booking, event, now):
            _transition(
                booking,
                status=BookingStatus.CONFIRMED,
                payment_status=PaymentStatus.PAID,
                actor=actor,
                reason=f"{reason} after the hold lapsed; a seat was still free",
                now=now,
            )
        else:
            lapsed = BookingStatus.EXPIRED if booking.status == BookingStatus.PENDING else None
            _transition(
                booking,
                status=lapsed,
                payment_status=PaymentStatus.PAID,
                actor=actor,
                reason=f"{reason} after the hold lapsed; no seat left, to be refunded",
                now=now,
            )
    return booking


def mark_refunded(*, booking_id: int, actor=None, reason: str = "refunded") -> Booking:
    """Record a refund of a paid booking; an active booking is cancelled. Idempotent."""
    now = timezone.now()
    with service_transaction():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.payment_status == PaymentStatus.REFUNDED:
            return booking
        if booking.payment_status != PaymentStatus.PAID:
            raise NotCancellable(
                f"Only paid bookings can be refunded (this one is {booking.payment_status})."
            )
        new_status = BookingStatus.CANCELLED if booking.status in ACTIVE_STATUSES else None
        _transition(
            booking,
            status=new_status,
            payment_status=PaymentStatus.REFUNDED,
            actor=actor,
            reason=reason,
            now=now,
        )
    return booking


def needs_refund(booking: Booking) -> bool:
    """Paid but without a seat: money that must go back."""
    return (
        booking.payment_status == PaymentStatus.PAID and booking.status != BookingStatus.CONFIRMED
    )


# --- internals ------------------------------------------------------------------------------


def _seats_taken(event: Event, now: datetime) -> int:
    return Booking.objects.filter(event=event).holding_seats(now).count()


def _can_retake_seat(booking: Booking, event: Event, now: datetime) -> bool:
    if event.status != EventStatus.SCHEDULED or event.starts_at <= now:
        return False
    if _seats_taken(event, now) >= event.capacity:
        return False
    # The person may have booked again after this hold lapsed: that booking has the seat.
    return (
        not Booking.objects.filter(user_id=booking.user_id, event=event)
        .active()
        .exclude(pk=booking.pk)
        .exists()
    )


def _transition(
    booking: Booking,
    *,
    status: str | None = None,
    payment_status: str | None = None,
    actor=None,
    reason: str,
    now: datetime,
) -> None:
    """Apply a state change to a locked booking and record it in the audit trail."""
    from_status, from_payment_status = booking.status, booking.payment_status
    fields = {"version", "updated_at"}
    if status and status != booking.status:
        booking.status = status
        fields.add("status")
        if stamp := STATUS_TIMESTAMPS.get(status):
            setattr(booking, stamp, now)
            fields.add(stamp)
    if payment_status and payment_status != booking.payment_status:
        booking.payment_status = payment_status
        fields.add("payment_status")
        if stamp := PAYMENT_TIMESTAMPS.get(payment_status):
            setattr(booking, stamp, now)
            fields.add(stamp)
    booking.version += 1
    booking.save(update_fields=sorted(fields))
    _audit(
        booking,
        from_status=from_status,
        from_payment_status=from_payment_status,
        actor=actor,
        reason=reason,
        now=now,
    )


def _audit(
    booking: Booking, *, from_status: str, from_payment_status: str, actor, reason: str, now
) -> None:
    BookingAudit.objects.create(
        booking=booking,
        version=booking.version,
        from_status=from_status,
        to_status=booking.status,
        from_payment_status=from_payment_status,
        to_payment_status=booking.payment_status,
        actor=actor,
        reason=reason[:255],
        created_at=now,
    )
