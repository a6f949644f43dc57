"""Every change of a booking's state. Each function is one transaction that takes its lock
first, checks, writes the booking and its audit row, and returns; booking's usual case takes
the event's lock last instead (`book_event`).

Lock order, everywhere: the event row, then the booking row. The event row guards the
capacity invariant (seats held + confirmed <= capacity) and carries the `seats_claimed`
counter (pending or confirmed bookings), which `_transition` moves in the same transaction
whenever a booking enters or leaves those states; so every change of state locks the event
first, even one that only releases a seat.

The one exception, `_book_lock_last`, locks the event while holding only the new booking's
uncommitted row. Another transaction that holds the event and writes an active booking for
the same person and event (the same person booking twice at once, one of them the exact way)
then waits for it: a deadlock, which PostgreSQL breaks by rolling one back (`Deadlock`), and
`book_event` tries the rolled-back one again.
"""

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ahoum import attempts, compiled
from ahoum.attempts import AttemptStatus
from ahoum.db import service_transaction
from ahoum.errors import Deadlock
from bookings import refunds, tasks
from bookings.exceptions import (
    AlreadyBooked,
    CancellationCutoffPassed,
    EventNotBookable,
    EventNotFound,
    NotCancellable,
    NotPayable,
    OwnEvent,
    SoldOut,
)
from bookings.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingAudit,
    BookingStatus,
    CheckoutSessionExpiry,
    Payment,
    PaymentIssue,
    PaymentIssueKind,
    PaymentStatus,
    Refund,
)
from bookings.signals import booking_changed
from events import cache as catalogue_cache
from events.models import Event, EventStatus

logger = logging.getLogger(__name__)

STATUS_TIMESTAMPS = {
    BookingStatus.CONFIRMED: "confirmed_at",
    BookingStatus.CANCELLED: "cancelled_at",
    BookingStatus.EXPIRED: "expired_at",
}
PAYMENT_TIMESTAMPS = {PaymentStatus.PAID: "paid_at", PaymentStatus.REFUNDED: "refunded_at"}


def book_event(*, user, event_id: int) -> Booking:
    """Confirm a free seat or hold a paid one for `user`; never more seats than capacity.

    Two ways to one answer. The usual case takes the event's row lock *last*
    (`_book_lock_last`): it writes the booking, its audit row and its tasks, then claims the
    seat in one UPDATE just before COMMIT, so a popular event's lock is held for one
    statement and the commit, not the whole booking (the rush, bench/README.md). Whatever
    that way cannot decide on its own rolls it back and goes the exact way
    (`_book_lock_first`: lock, look, count, write): the person has an active booking already
    (the one-active-booking index refused the insert), the counter says full but lapsed holds
    may free a seat, or the event changed while the booking was written (price, time...).
    """
    try:
        return _book_lock_last(user=user, event_id=event_id)
    except (IntegrityError, _TakeTheLockFirst, Deadlock):
        pass
    try:
        return _book_lock_first(user=user, event_id=event_id)
    except Deadlock:
        # The same person's other request, writing its booking before taking the lock, and
        # this one waited for each other; the database rolled this one back, so the other
        # can commit. The second try sees its booking (409 `already_booked`).
        return _book_lock_first(user=user, event_id=event_id)


class _TakeTheLockFirst(Exception):
    """The lock-last try cannot decide on its own; raised inside it, so it rolled back."""


def _book_lock_last(*, user, event_id: int) -> Booking:
    now = timezone.now()
    with service_transaction():
        seen = compiled.read_by_pk(Event, event_id)  # no lock: checked again under it below
        if seen is None:
            raise EventNotFound()
        _check_bookable(seen, user.pk, now)
        if seen.seats_claimed >= seen.capacity:
            # Full by the counter. Refused without the lock when the seats held right now,
            # counted with the counter in one statement, leave none: the event was sold out
            # at that instant. Lapsed holds may leave one: the exact way decides.
            left = _seats_left(event_id, now)
            if left is None:
                raise EventNotFound()
            if left <= 0:
                raise SoldOut()
            raise _TakeTheLockFirst()

        booking = _write_booking(user=user, event=seen, now=now)

        # The lock, held from here to the COMMIT. The event as it is now must still take the
        # booking exactly as written; otherwise all of it rolls back.
        event = _claim_a_seat(event_id)
        if event is None:
            raise EventNotFound()
        _check_bookable(event, user.pk, now)
        if event.seats_claimed > event.capacity or _booking_terms(event) != _booking_terms(seen):
            raise _TakeTheLockFirst()
        booking.event = event
    return booking


def _book_lock_first(*, user, event_id: int) -> Booking:
    now = timezone.now()
    with service_transaction():
        # Lock the event and count this booking's seat in, in one statement; every refusal
        # below raises, and the rollback takes the seat back out.
        event = _claim_a_seat(event_id)
        if event is None:
            raise EventNotFound()
        _check_bookable(event, user.pk, now)

        mine = (
            Booking.objects.select_for_update(no_key=True).filter(user=user, event=event).active()
        )
        for booking in mine:
            if booking.holds_seat(now):
                raise AlreadyBooked(booking_id=booking.pk)
            # A lapsed hold still blocks the unique index until it is marked expired.
            event.seats_claimed += _transition(
                booking, status=BookingStatus.EXPIRED, reason="hold expired", now=now
            )

        # Seats other bookings claim (ours is in the counter already). The counter answers
        # without a query while seats are left; only a full-looking event pays for counting
        # the lapsed holds it may still include.
        if event.seats_claimed - 1 >= event.capacity and (
            event.seats_taken(now) - 1 >= event.capacity
        ):
            raise SoldOut()

        return _write_booking(user=user, event=event, now=now)


def _write_booking(*, user, event: Event, now: datetime) -> Booking:
    """Insert the booking, its audit row and its tasks (no seat claimed here); the booking.

    A compiled INSERT (no save signals; none are used): the hottest write there is. An
    active booking of this person for this event makes it raise `IntegrityError`.
    """
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
    compiled.insert(booking)
    _audit(booking, from_status="", from_payment_status="", actor=user, reason="booked", now=now)
    if booking.hold_expires_at:
        _schedule_expiry(booking)
    return booking


def _booking_terms(event: Event) -> tuple:
    """What the booking's rows are written from: copied fields, and the CRM payload's."""
    return (event.facilitator_id, event.price, event.currency, event.title, event.starts_at)


def _seats_left(event_id: int, now: datetime) -> int | None:
    """Capacity minus the seats held right now, read in one statement (no lock); None if gone."""
    return (
        Event.objects.with_seats_left(now)
        .filter(pk=event_id)
        .values_list("seats_left", flat=True)
        .first()
    )


def cancel_booking(
    *, booking: Booking, by, reason: str = "cancelled by attendee", apply_cutoff: bool = True
) -> Booking:
    """Cancel an active booking; its seat is free at once. A paid one owes a `Refund`.

    With `apply_cutoff`, a paid booking can only be cancelled more than
    CANCELLATION_CUTOFF_HOURS before the event starts. The refund is made by the worker
    (`bookings.refunds`), never in this transaction or the request; an unpaid hold's open
    Checkout Session is expired by a task, so it can no longer be paid.
    """
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking.pk)
        if booking.status not in ACTIVE_STATUSES:
            raise NotCancellable(f"This booking is already {booking.status}.")
        if booking.payment_status == PaymentStatus.PAID:
            cutoff = timedelta(hours=settings.CANCELLATION_CUTOFF_HOURS)
            if apply_cutoff and booking.event.starts_at - now < cutoff:
                raise CancellationCutoffPassed(
                    "Paid bookings can be cancelled with a full refund until "
                    f"{settings.CANCELLATION_CUTOFF_HOURS} hours before the event starts; "
                    "that time has passed."
                )
        _cancel(booking, actor=by, reason=reason, now=now)
    return booking


def settle_cancelled_event(*, event_id: int, by_id: int | None = None, limit: int = 200) -> int:
    """Cancel up to `limit` active bookings of a cancelled event; how many it cancelled.

    One transaction under the event's lock per batch, so cancelling an event with thousands
    of bookings never holds a lock for long; `tasks.settle_cancelled_event` runs batches until
    none is left. Paid bookings owe a refund, made by the worker.
    """
    now = timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().get(pk=event_id)
        if event.status != EventStatus.CANCELLED:
            return 0
        reason = event.cancellation_reason
        batch = (
            Booking.objects.select_for_update(no_key=True)
            .filter(event=event)
            .active()
            .prefetch_related("payments")
            .order_by("pk")[:limit]
        )
        cancelled = 0
        for booking in batch:
            booking.event = event
            _cancel(
                booking,
                actor_id=by_id,
                reason=f"event cancelled: {reason}" if reason else "event cancelled",
                now=now,
                change="booking.event_cancelled",
            )
            cancelled += 1
    return cancelled


def expire_hold(*, booking_id: int, now: datetime | None = None) -> bool:
    """Mark one lapsed, unpaid hold `expired`. False if it was paid or changed meanwhile."""
    now = now or timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking_id)
        if booking is None or booking.status != BookingStatus.PENDING:
            return False
        if booking.payment_status != PaymentStatus.UNPAID or booking.hold_expires_at > now:
            return False
        _transition(booking, status=BookingStatus.EXPIRED, reason="hold expired", now=now)
    return True


def expire_stale_holds(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Mark up to `limit` lapsed holds `expired`, oldest first; how many it marked.

    Bookkeeping: they already stopped counting as seats. One transaction per hold, so a
    sweep never holds an event's lock for long.
    """
    now = now or timezone.now()
    stale = (
        Booking.objects.stale_holds(now)
        .order_by("hold_expires_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(expire_hold(booking_id=pk, now=now) for pk in list(stale))


def mark_paid(*, booking_id: int, actor=None, reason: str = "payment received") -> Booking:
    """Record that the booking's amount was received outside Stripe (staff, the CRM).

    Confirmed when it still has (or can retake) its seat; otherwise `paid` without a seat and
    owed back. Its open Checkout Session is expired, so the person cannot pay twice; should a
    payment still arrive there, it is refunded (`record_checkout_payment`). Recording the same
    payment twice changes nothing.
    """
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking_id, missing=Booking.DoesNotExist)
        if booking.payment_status != PaymentStatus.UNPAID:
            return booking  # already paid, refunded or free: a replay
        _settle(booking, payment=None, paid_at=now, actor=actor, reason=reason, now=now)
        _expire_open_checkout(booking)
    return booking


def record_checkout_payment(
    *,
    booking_id: int,
    session_id: str,
    payment_intent_id: str,
    paid_at: datetime,
) -> Payment:
    """Record a paid Checkout Session of the booking, once; the `Payment`.

    The first payment of an unpaid booking settles it, judged by `paid_at` (when Stripe says
    it was paid, not when this runs): paid before the hold ended confirms the booking even if
    the hold lapsed since. Any other payment (the booking was paid already, by another session
    or outside Stripe) is refunded in full and flagged for staff.
    """
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking_id, missing=Booking.DoesNotExist)
        payment = Payment.objects.filter(checkout_session_id=session_id).first()
        if payment is not None:
            return payment  # Stripe's second event for the same session, or a replay
        payment = Payment.objects.create(
            booking=booking,
            checkout_session_id=session_id,
            payment_intent_id=payment_intent_id,
            amount=booking.amount,
            currency=booking.currency,
            paid_at=paid_at,
            settles_booking=booking.payment_status == PaymentStatus.UNPAID,
            created_at=now,
        )
        if payment.settles_booking:
            booking.payment_intent_id = payment_intent_id
            if booking.checkout_session_id != session_id:
                _expire_open_checkout(booking)  # a renewed hold's session: no longer payable
            _settle(
                booking,
                payment=payment,
                paid_at=paid_at,
                actor=None,
                reason=f"paid through Stripe Checkout {session_id}",
                now=now,
                extra_fields={"payment_intent_id"},
            )
        else:
            refunds.owe(booking=booking, payment=payment, reason="paid twice", now=now)
            flag_payment_issue(
                booking_id=booking.pk,
                kind=PaymentIssueKind.DUPLICATE_PAYMENT,
                detail=(
                    f"Checkout Session {session_id} was paid while the booking was already "
                    f"{booking.payment_status}; that payment is being refunded in full."
                ),
                stripe_object_id=session_id,
            )
    return payment


def refund_succeeded(*, refund_id: int, stripe_refund_id: str) -> Refund:
    """Record that Stripe moved a refund's money back; a booking's own money marks it refunded."""
    booking_id = Refund.objects.values_list("booking_id", flat=True).get(pk=refund_id)
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking_id, missing=Booking.DoesNotExist)
        refund = (
            Refund.objects.select_for_update(of=("self",))
            .select_related("payment")
            .get(pk=refund_id)
        )
        succeeded_now = attempts.succeed(refund, now=now, stripe_refund_id=stripe_refund_id)
        if not succeeded_now and stripe_refund_id and not refund.stripe_refund_id:
            # charge.refunded got here first: keep Stripe's id of the refund all the same.
            refund.stripe_refund_id = stripe_refund_id
            refund.save(update_fields=["stripe_refund_id", "updated_at"])
        settling = refund.payment is None or refund.payment.settles_booking
        if settling and booking.payment_status == PaymentStatus.PAID:
            _refunded(booking, actor=None, reason=f"refunded: {refund.reason}", now=now)
    return refund


def refund_failed_in_stripe(*, stripe_refund_id: str, reason: str) -> Refund | None:
    """Stripe reports a refund it had accepted as failed: hand it to staff; None if unknown.

    The money did not go back, so the refund gives up (the booking's `refund_status` says
    `failed`) and staff get a `refund_failing` payment issue to refund it another way.
    Idempotent: the same report twice changes nothing.
    """
    refund = Refund.objects.filter(stripe_refund_id=stripe_refund_id).exclude(stripe_refund_id="")
    found = refund.values_list("pk", "booking_id").first()
    if found is None:
        logger.warning("refund.failed for unknown Stripe refund %s", stripe_refund_id)
        return None
    refund_id, booking_id = found
    now = timezone.now()
    with service_transaction():
        _lock_with_event(booking_id)
        refund = Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)
        if refund.status == AttemptStatus.GAVE_UP:
            return refund
        refund.failures += 1  # a known failure: a staff retry must use a new idempotency key
        attempts.give_up(
            refund,
            error=f"Stripe reported refund {stripe_refund_id} failed ({reason}): "
            "refund this by hand.",
            policy=refunds.POLICY,
            now=now,
        )
    return refund


def mark_refunded(*, booking_id: int, actor=None, reason: str = "refunded") -> Booking:
    """Record that a paid booking's money went back (Stripe's `charge.refunded`, staff).

    An active booking is cancelled, and refunds still owed for its money are settled: the
    money is back. Idempotent: our own refund and Stripe's later `charge.refunded` both come.
    """
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking_id, missing=Booking.DoesNotExist)
        if booking.payment_status == PaymentStatus.REFUNDED:
            return booking
        if booking.payment_status != PaymentStatus.PAID:
            raise NotPayable(
                f"Only paid bookings can be refunded (this one is {booking.payment_status})."
            )
        _refunded(booking, actor=actor, reason=reason, now=now)
        owed = (
            Refund.objects.select_for_update(of=("self",))
            .filter(booking=booking)
            .exclude(status=AttemptStatus.SUCCEEDED)
            .exclude(payment__settles_booking=False)
        )
        for refund in owed:
            attempts.succeed(refund, now=now)
    return booking


def attach_checkout(*, booking_id: int, session_id: str, url: str, expires_at: datetime) -> Booking:
    """Store a hold's Checkout Session; the hold lasts as long as the session can be paid."""
    with service_transaction():
        booking = Booking.objects.select_for_update(no_key=True).get(pk=booking_id)
        booking.checkout_session_id = session_id
        booking.checkout_url = url
        fields = ["checkout_session_id", "checkout_url", "updated_at"]
        if booking.status == BookingStatus.PENDING and expires_at > booking.hold_expires_at:
            booking.hold_expires_at = expires_at
            fields.append("hold_expires_at")
            _schedule_expiry(booking)
        booking.save(update_fields=fields)
    return booking


def release_hold(*, booking_id: int, reason: str, change: str = "") -> Booking | None:
    """End an unpaid hold now (payment failed, checkout expired or could not start)."""
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking_id)
        if booking is None:
            return None
        if (
            booking.status == BookingStatus.PENDING
            and booking.payment_status == PaymentStatus.UNPAID
        ):
            _transition(
                booking, status=BookingStatus.EXPIRED, reason=reason, now=now, change=change
            )
    return booking


def renew_hold(*, booking: Booking, by) -> Booking:
    """Hold a seat again for an unpaid booking whose hold lapsed, if one is free."""
    now = timezone.now()
    with service_transaction():
        booking = _lock_with_event(booking.pk, missing=Booking.DoesNotExist)
        event = booking.event
        if booking.payment_status != PaymentStatus.UNPAID or booking.status not in (
            BookingStatus.PENDING,
            BookingStatus.EXPIRED,
        ):
            raise NotPayable(f"This booking is {booking.status} and {booking.payment_status}.")
        if booking.holds_seat(now):
            return booking
        _check_bookable(event, booking.user_id, now)
        others = Booking.objects.filter(user_id=booking.user_id, event=event).active()
        if others.exclude(pk=booking.pk).exists():
            raise AlreadyBooked("You already have another booking for this event.")
        # This booking's own lapsed hold is among the lapsed ones seats_taken() leaves out.
        if event.seats_taken(now) >= event.capacity:
            raise SoldOut()
        booking.hold_expires_at = now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
        booking.checkout_session_id = booking.checkout_url = ""
        _transition(
            booking,
            status=BookingStatus.PENDING,
            actor=by,
            reason="hold renewed for a new checkout",
            now=now,
            extra_fields={"hold_expires_at", "checkout_session_id", "checkout_url"},
        )
        _schedule_expiry(booking)
    return booking


def flag_payment_issue(
    *, booking_id: int | None, kind: str, detail: str, stripe_object_id: str = ""
) -> PaymentIssue:
    """Record something about a payment that staff must review (never auto-resolved)."""
    return PaymentIssue.objects.create(
        booking_id=booking_id, kind=kind, detail=detail, stripe_object_id=stripe_object_id
    )


# --- internals ------------------------------------------------------------------------------


def _check_bookable(event: Event, user_id: int, now: datetime) -> None:
    if event.status != EventStatus.SCHEDULED:
        raise EventNotBookable("This event has been cancelled.")
    if event.starts_at <= now:
        raise EventNotBookable("This event has already started.")
    if event.facilitator_id == user_id:
        raise OwnEvent()


def _schedule_expiry(booking: Booking) -> None:
    """Make sure a sweep (`tasks.expire_lapsed_holds`) runs soon after this hold lapses.

    Bookkeeping only: a lapsed hold stops counting as a seat the moment it lapses; the sweep
    marks it `expired` (and so announces `booking.expired`) at the end of the
    `HOLD_SWEEP_SECONDS` period it lapses in. A sweep expires every hold lapsed by then, so
    the holds lapsing in one period share one: each process enqueues one sweep per period, in
    the transaction of its first hold for that period, instead of a task row per hold (the
    hottest write there is). The process remembers the period only once that transaction
    committed; a rolled-back booking leaves the next hold to enqueue it.
    """
    period = settings.HOLD_SWEEP_SECONDS
    due = math.ceil(booking.hold_expires_at.timestamp() / period) * period
    if due in _sweeps_enqueued:
        return
    tasks.expire_lapsed_holds.using(run_after=datetime.fromtimestamp(due, UTC)).enqueue()
    # robust: failing to remember costs one more sweep later, never an error for the booking.
    transaction.on_commit(partial(_remember_sweep, due), robust=True)


# End times (epoch seconds) of the sweep periods this process has a committed sweep for.
_sweeps_enqueued: set[int] = set()


def _remember_sweep(due: int) -> None:
    now = time.time()
    # A snapshot (one call under the GIL): threaded workers may add to the set meanwhile.
    _sweeps_enqueued.difference_update([d for d in tuple(_sweeps_enqueued) if d < now])
    _sweeps_enqueued.add(due)


def _cancel(booking: Booking, *, reason: str, now: datetime, change: str = "", actor=None,
            actor_id: int | None = None) -> None:  # fmt: skip
    """Cancel a locked active booking: its money is owed back, its open session expired."""
    paid = booking.payment_status == PaymentStatus.PAID
    _transition(
        booking,
        status=BookingStatus.CANCELLED,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        now=now,
        change=change,
    )
    if paid:
        refunds.owe(booking=booking, payment=_settling_payment(booking), reason=reason, now=now)
    # Unpaid: its session must not be paid now. Paid: a renewed hold's session may be open
    # (Stripe answers "not open" for the one that was paid, which changes nothing).
    _expire_open_checkout(booking)


def _settle(
    booking: Booking,
    *,
    payment: Payment | None,
    paid_at: datetime,
    actor,
    reason: str,
    now: datetime,
    extra_fields: set[str] = frozenset(),
) -> None:
    """Record a locked unpaid booking's payment: confirmed if it has a seat, else owed back.

    A hold paid before it ended keeps its seat even if the hold lapsed since (the worker was
    behind): the person did everything in time. If the seat was taken meanwhile, the event
    is overbooked by one and staff see a payment issue (README, "Payments").
    """
    event = booking.event
    waiting = booking.status in (BookingStatus.PENDING, BookingStatus.EXPIRED)
    waiting = waiting and event.status == EventStatus.SCHEDULED
    paid_in_time = waiting and booking.hold_expires_at and paid_at <= booking.hold_expires_at
    if waiting and (booking.holds_seat(now) or _can_retake_seat(booking, event, now)):
        _transition(
            booking,
            status=BookingStatus.CONFIRMED,
            payment_status=PaymentStatus.PAID,
            actor=actor,
            reason=reason if booking.holds_seat(now) else f"{reason}; a seat was still free",
            now=now,
            extra_fields=extra_fields,
        )
    elif paid_in_time and not _booked_again(booking, event):
        _transition(
            booking,
            status=BookingStatus.CONFIRMED,
            payment_status=PaymentStatus.PAID,
            actor=actor,
            reason=f"{reason} before the hold ended; confirmed over capacity",
            now=now,
            extra_fields=extra_fields,
        )
        flag_payment_issue(
            booking_id=booking.pk,
            kind=PaymentIssueKind.OVERBOOKED,
            detail=(
                f"Paid at {paid_at.isoformat()}, before the hold ended at "
                f"{booking.hold_expires_at.isoformat()}, but processed after its seat was "
                f"taken: {event.title} now has one booking more than its capacity."
            ),
        )
    else:
        _transition(
            booking,
            status=BookingStatus.EXPIRED if booking.status == BookingStatus.PENDING else None,
            payment_status=PaymentStatus.PAID,
            actor=actor,
            reason=f"{reason} without a seat (hold lapsed or booking {booking.status}); "
            "to be refunded",
            now=now,
            extra_fields=extra_fields,
        )
        # Never keep money without a seat.
        refunds.owe(booking=booking, payment=payment, reason="paid without a seat", now=now)


def _refunded(booking: Booking, *, actor, reason: str, now: datetime) -> None:
    _transition(
        booking,
        status=BookingStatus.CANCELLED if booking.status in ACTIVE_STATUSES else None,
        payment_status=PaymentStatus.REFUNDED,
        actor=actor,
        reason=reason,
        now=now,
    )


def _settling_payment(booking: Booking) -> Payment | None:
    """The Stripe payment the booking is settled by; None when paid outside Stripe."""
    # all(): one query, or none when the caller prefetched them (a cancelled event's batch).
    return next((payment for payment in booking.payments.all() if payment.settles_booking), None)


def _expire_open_checkout(booking: Booking) -> None:
    """Owe the expiry of the booking's Checkout Session, made by the worker (`payments`)."""
    from bookings import payments  # payments calls these services

    if not booking.checkout_session_id:
        return
    expiry, created = CheckoutSessionExpiry.objects.get_or_create(
        checkout_session_id=booking.checkout_session_id,
        defaults={"booking": booking, "next_attempt_at": timezone.now()},
    )
    if created:
        attempts.schedule(expiry, payments.SESSION_EXPIRY_POLICY)


def _lock_with_event(booking_id: int, missing: type[Exception] | None = None) -> Booking | None:
    """Lock a booking's event row, then the booking (the lock order); the booking or None.

    With `missing`, an unknown id raises it instead of returning None.
    """
    event_id = Booking.objects.filter(pk=booking_id).values_list("event_id", flat=True).first()
    if event_id is None:
        if missing:
            raise missing(f"Booking {booking_id} does not exist.")
        return None
    event = Event.objects.select_for_update().get(pk=event_id)
    # FOR NO KEY UPDATE: the booking's key never changes, and rows that refer to it (a payment
    # issue, an email) may then be inserted by a transaction holding another row this one
    # waits for (a refund giving up) without waiting for this one: no deadlock.
    booking = Booking.objects.select_for_update(no_key=True).get(pk=booking_id)
    booking.event = event
    return booking


def _claim_a_seat(event_id: int) -> Event | None:
    """Lock the event's row and add one to its `seats_claimed`; the event as it is now.

    One UPDATE ... RETURNING instead of SELECT ... FOR UPDATE and a second UPDATE: booking
    is the hottest path there is, and the lock is held from here to the commit.
    """
    event = compiled.update_by_pk(Event, "seats_claimed = seats_claimed + 1", event_id)
    if event is not None:
        catalogue_cache.invalidate()  # seats_left changed
    return event


def _claim_seats(event_id: int, delta: int) -> None:
    """Move the event's `seats_claimed` counter; the caller holds the event's row lock."""
    Event.objects.filter(pk=event_id).update(seats_claimed=F("seats_claimed") + delta)
    catalogue_cache.invalidate()  # seats_left changed


def _can_retake_seat(booking: Booking, event: Event, now: datetime) -> bool:
    if event.status != EventStatus.SCHEDULED or event.starts_at <= now:
        return False
    if event.seats_taken(now) >= event.capacity:
        return False
    return not _booked_again(booking, event)


def _booked_again(booking: Booking, event: Event) -> bool:
    """The person booked again after this hold lapsed: that booking has their seat."""
    return (
        Booking.objects.filter(user_id=booking.user_id, event=event)
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
    actor_id: int | None = None,
    reason: str,
    now: datetime,
    extra_fields: set[str] = frozenset(),
    change: str = "",
) -> int:
    """Apply a state change to a locked booking and record it in the audit trail.

    Returns how the event's `seats_claimed` moved (-1, 0 or 1); the counter is already
    written. The caller holds the event's row lock.
    """
    from_status, from_payment_status = booking.status, booking.payment_status
    fields = {"version", "updated_at", *extra_fields}
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
    claimed = (booking.status in ACTIVE_STATUSES) - (from_status in ACTIVE_STATUSES)
    if claimed:
        _claim_seats(booking.event_id, claimed)
    _audit(
        booking,
        from_status=from_status,
        from_payment_status=from_payment_status,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        now=now,
        change=change,
    )
    return claimed


def _audit(
    booking: Booking,
    *,
    from_status: str,
    from_payment_status: str,
    actor,
    reason: str,
    now,
    change: str = "",
    actor_id: int | None = None,
) -> None:
    audit = compiled.insert(
        BookingAudit(
            booking=booking,
            version=booking.version,
            change=change or _change_name(booking, from_status, from_payment_status),
            from_status=from_status,
            to_status=booking.status,
            from_payment_status=from_payment_status,
            to_payment_status=booking.payment_status,
            actor_id=actor.pk if actor is not None else actor_id,
            reason=reason[:255],
            created_at=now,
        )
    )
    logger.info(
        "booking transition",
        extra={
            "booking_id": booking.pk,
            "event_id": booking.event_id,
            "change": audit.change,
            "version": audit.version,
            "from_status": from_status,
            "to_status": booking.status,
            "payment_status": booking.payment_status,
            "actor_id": audit.actor_id,
        },
    )
    booking_changed.send(sender=Booking, booking=booking, audit=audit)


def _change_name(booking: Booking, from_status: str, from_payment_status: str) -> str:
    """What happened, as notification types name it (`booking.paid`, `booking.expired`...)."""
    if not from_status:
        return "booking.created"
    if booking.payment_status != from_payment_status and booking.payment_status in (
        PaymentStatus.PAID,
        PaymentStatus.REFUNDED,
    ):
        return f"booking.{booking.payment_status}"
    if booking.status != from_status:
        return f"booking.{booking.status}"
    return "booking.updated"
