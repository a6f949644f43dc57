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

import stripe
from django.conf import settings

from ahoum import attempts
from bookings import money, tasks
from bookings.models import Booking, Payment, PaymentIssue, PaymentIssueKind, Refund

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


def owe(*, booking: Booking, payment: Payment | None, reason: str, now: datetime) -> Refund:
    """Owe `payment` back in full (None: the booking was paid outside Stripe).

    Call inside the transaction that makes it owed: the row and its first attempt's task
    commit with that change or not at all.
    """
    amount = payment.amount if payment else booking.amount
    currency = payment.currency if payment else booking.currency
    refund = Refund.objects.create(
        booking=booking,
        payment=payment,
        amount=amount,
        currency=currency,
        reason=reason[:255],
        next_attempt_at=now,
        created_at=now,
    )
    attempts.schedule(refund, POLICY)
    return refund


def attempt_refund(*, refund_id: int, after_attempts: int) -> Refund:
    """Make a refund's next attempt through Stripe, unless another task made it; the refund."""
    from bookings import services  # services owe refunds; a refund's success is a service

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
            return services.refund_succeeded(refund_id=refund.pk, stripe_refund_id="")
        return _failed(refund, error)
    except Exception as error:  # a hang, a 5xx, a bug: recorded and retried, never silent
        return _failed(refund, error)
    logger.info("refund %s succeeded for booking %s", stripe_refund.id, refund.booking_id)
    return services.refund_succeeded(refund_id=refund.pk, stripe_refund_id=stripe_refund.id)


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


def status_of(refunds: list[Refund]) -> str | None:
    """What the booking's API says of its refunds: None, pending, succeeded or failed."""
    if not refunds:
        return None
    if any(refund.status == attempts.AttemptStatus.GAVE_UP for refund in refunds):
        return "failed"
    if all(refund.status == attempts.AttemptStatus.SUCCEEDED for refund in refunds):
        return "succeeded"
    return "pending"
