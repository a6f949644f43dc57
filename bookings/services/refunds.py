"""Refunds: money owed back is a `Refund` row, and the worker moves it through Stripe.

A refund is owed inside the transaction that makes it owed (a cancellation, an event
cancelled, a payment that found no seat, a second payment of a paid booking): `owe()` writes
the row and enqueues its first attempt there. No request ever calls Stripe to refund; the
task does (`attempt_refund`), through the shared attempt mechanism (`ahoum.attempts`), so a
worker that dies or hangs at any point is taken over when its lease ends and the attempt is
repeated with the same Stripe idempotency key. A refund that cannot succeed (no Stripe
payment to refund, or out of attempts) gives up into a payment issue staff see.
"""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.utils import timezone

from ahoum import attempts
from ahoum.attempts import AttemptStatus
from ahoum.db import service_transaction
from bookings import money, tasks
from bookings.exceptions import NotPayable
from bookings.models import (
    ACTIVE_STATUSES,
    Attendee,
    Booking,
    BookingStatus,
    Payment,
    PaymentIssue,
    PaymentIssueKind,
    PaymentStatus,
    Refund,
)
from bookings.services import booking as booking_service

logger = logging.getLogger(__name__)


def stripe_call_lease() -> timedelta:
    # Longer than the Stripe client can take: its timeout per try, each of its own retries,
    # and a margin for their backoff sleeps (stripe-python's are under a few seconds).
    tries = stripe.max_network_retries + 1
    return timedelta(seconds=settings.STRIPE_TIMEOUT_SECONDS * tries + 60)


def _flag_for_staff(refund: Refund) -> None:
    PaymentIssue.objects.create(
        booking_id=refund.booking_id,
        kind=PaymentIssueKind.REFUND_FAILING,
        detail=(
            f"Refund #{refund.pk} of {refund.amount} {refund.currency} gave up after "
            f"{refund.attempts} attempts: {refund.last_error}"
        ),
        stripe_object_id=refund.payment.payment_intent_id if refund.payment_id else "",
    )


POLICY = attempts.Policy(
    task=tasks.process_refund,
    lease=stripe_call_lease,
    next_attempt=attempts.backoff(
        max_attempts="REFUND_MAX_ATTEMPTS",
        base_seconds="REFUND_RETRY_BASE_SECONDS",
        max_seconds="REFUND_RETRY_MAX_DELAY_SECONDS",
    ),
    on_give_up=_flag_for_staff,
)


def owe(
    *,
    booking: Booking,
    payment: Payment | None,
    reason: str,
    now: datetime,
    amount: Decimal | None = None,
    attendee: Attendee | None = None,
) -> Refund:
    """Owe `amount` of `payment` back (None: the booking was paid outside Stripe).

    By default what is left of the payment after the refunds already owed for it (seats of
    a group cancelled earlier), or the booking's amount when paid outside Stripe. `attendee`:
    the seat whose share this is (the booking stays paid). Call inside the transaction that
    makes it owed: the row and its first attempt's task commit with that change or not at all.
    """
    if amount is None:
        amount = payment.amount - owed_for(booking, payment) if payment else booking.amount
    currency = payment.currency if payment else booking.currency
    refund = Refund.objects.create(
        booking=booking,
        payment=payment,
        attendee=attendee,
        amount=amount,
        currency=currency,
        reason=reason[:255],
        next_attempt_at=now,
        created_at=now,
    )
    attempts.schedule(refund, POLICY)
    return refund


def owed_for(booking: Booking, payment: Payment) -> Decimal:
    """The money owed back (or given back) so far for `payment` of `booking`, by its refunds.

    From `booking.refunds.all()`: one query, or none when the caller prefetched them (a
    cancelled event's batch).
    """
    refunds = (refund for refund in booking.refunds.all() if refund.payment_id == payment.pk)
    return sum((refund.amount for refund in refunds), Decimal("0"))


def attempt_refund(*, refund_id: int, after_attempts: int) -> Refund:
    """Make a refund's next attempt through Stripe, unless another task made it; the refund."""
    refund = attempts.claim(Refund, refund_id, after_attempts=after_attempts, policy=POLICY)
    if refund is None:
        return Refund.objects.get(pk=refund_id)
    payment = refund.payment
    if payment is None or not payment.payment_intent_id or not settings.STRIPE_SECRET_KEY:
        return attempts.record_failure(
            Refund,
            refund.pk,
            attempt=refund.attempts,
            error="No Stripe payment to refund (paid outside Stripe): refund this by hand.",
            policy=POLICY,
            retryable=False,
        )
    try:
        stripe_refund = stripe.Refund.create(
            payment_intent=payment.payment_intent_id,
            amount=money.minor_units(refund.amount, refund.currency),
            reason="requested_by_customer",
            metadata={
                "booking_id": refund.booking_id,
                "refund_id": refund.pk,
                "reason": refund.reason[:450],
            },
            idempotency_key=refund.idempotency_key,
            api_key=settings.STRIPE_SECRET_KEY,
        )
    except stripe.InvalidRequestError as error:
        if error.code == "charge_already_refunded":
            # Refunded in Stripe already (the dashboard, or our own earlier key): the money
            # is back, which is all this refund is for.
            return refund_succeeded(refund_id=refund.pk, stripe_refund_id="")
        return _failed(refund, error)
    except Exception as error:  # a hang, a 5xx, a bug: recorded and retried, never silent
        return _failed(refund, error)
    logger.info("refund %s succeeded for booking %s", stripe_refund.id, refund.booking_id)
    return refund_succeeded(refund_id=refund.pk, stripe_refund_id=stripe_refund.id)


def _failed(refund: Refund, error: Exception) -> Refund:
    """Record a failed attempt. Only an answer from Stripe is a known failure, after which the
    next attempt gets a new idempotency key (Stripe keeps a key's result, errors included). A
    timeout, a lost connection or our own error may have left the refund made: the next
    attempt repeats the same key, and Stripe answers with what it did."""
    answered = isinstance(error, stripe.StripeError) and not isinstance(
        error, stripe.APIConnectionError
    )
    message = getattr(error, "user_message", None) or str(error)
    logger.warning("refund %s attempt %s failed: %r", refund.pk, refund.attempts, error)
    return attempts.record_failure(
        Refund,
        refund.pk,
        attempt=refund.attempts,
        error=f"{type(error).__name__}: {message}",
        policy=POLICY,
        outcome_known=answered,
    )


def retry(*, refund_id: int) -> Refund | None:
    """Staff: try a given-up refund again now (after fixing its cause); None if not possible."""
    return attempts.reopen(Refund, refund_id, policy=POLICY)


def status_for(booking: Booking) -> str | None:
    """What the booking's API says of its refunds; no query before it was ever paid."""
    if booking.payment_status in (PaymentStatus.UNPAID, PaymentStatus.FREE):
        return None  # money is owed back only once it was paid
    return status_of(list(booking.refunds.all()))


def status_of(refunds: list[Refund]) -> str | None:
    """What the booking's API says of its refunds: None, pending, succeeded or failed."""
    if not refunds:
        return None
    if any(refund.status == attempts.AttemptStatus.GAVE_UP for refund in refunds):
        return "failed"
    if all(refund.status == attempts.AttemptStatus.SUCCEEDED for refund in refunds):
        return "succeeded"
    return "pending"


# --- Refund outcomes -------------------------------------------------------------------------


def refund_succeeded(*, refund_id: int, stripe_refund_id: str) -> Refund:
    """Record that Stripe moved a refund's money back; a booking's own money marks it refunded."""
    booking_id = Refund.objects.values_list("booking_id", flat=True).get(pk=refund_id)
    now = timezone.now()
    with service_transaction():
        booking = booking_service.lock_with_event(booking_id, missing=Booking.DoesNotExist)
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
        # The booking's own money, all of it (not one seat's share): the booking is refunded.
        settling = refund.payment is None or refund.payment.settles_booking
        if settling and refund.attendee_id is None and booking.payment_status == PaymentStatus.PAID:
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
        booking_service.lock_with_event(booking_id)
        refund = Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)
        if refund.status == AttemptStatus.GAVE_UP:
            return refund
        refund.failures += 1  # a known failure: a staff retry must use a new idempotency key
        attempts.give_up(
            refund,
            error=f"Stripe reported refund {stripe_refund_id} failed ({reason}): "
            "refund this by hand.",
            policy=POLICY,
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
        booking = booking_service.lock_with_event(booking_id, missing=Booking.DoesNotExist)
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


def _refunded(booking: Booking, *, actor, reason: str, now: datetime) -> None:
    booking_service.transition(
        booking,
        status=BookingStatus.CANCELLED if booking.status in ACTIVE_STATUSES else None,
        payment_status=PaymentStatus.REFUNDED,
        actor=actor,
        reason=reason,
        now=now,
    )
