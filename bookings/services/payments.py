"""Payments: Stripe Checkout for paid bookings, Stripe's webhooks, and payment state.

Every Stripe call here runs outside any transaction that holds a lock; the booking's state
changes only through `booking.transition()`. Webhooks arrive through dj-stripe's view (which
verifies the signature and stores the event), whose receiver (`bookings/receivers.py`) writes
a receipt that the worker applies (`attempt_stripe_event`). A payment settles a booking in
`settle()`: confirmed if it has a seat, otherwise owed back (`refunds`).
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.utils import timezone
from djstripe.models import Event as StripeEvent

from ahoum import attempts
from ahoum.db import service_transaction
from bookings import tasks
from bookings.exceptions import (
    NotPayable,
    PaymentProviderError,
    PaymentProviderUnavailable,
    PaymentsNotConfigured,
)
from bookings.models import (
    Booking,
    BookingStatus,
    CheckoutSessionExpiry,
    Payment,
    PaymentIssue,
    PaymentIssueKind,
    PaymentStatus,
    StripeEventReceipt,
)
from bookings.money import STRIPE_CURRENCIES, from_minor_units, minor_units
from bookings.services import booking as booking_service
from bookings.services import refunds
from events.models import Event, EventStatus

logger = logging.getLogger(__name__)

# https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at
SESSION_MIN_LIFETIME = timedelta(minutes=31)  # Stripe's floor is 30 minutes after creation
SESSION_MAX_LIFETIME = timedelta(hours=23, minutes=58)


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


# --- Checkout -------------------------------------------------------------------------------


def book_with_checkout(
    *,
    user,
    event_id: int,
    seats: int = 1,
    attendees: Sequence[dict] = (),
    offer_id: int | None = None,
) -> Booking:
    """Book seats (or a waitlist offer's); a paid hold also gets a Checkout Session when
    Stripe is configured."""
    booking = booking_service.book_event(
        user=user, event_id=event_id, seats=seats, attendees=attendees, offer_id=offer_id
    )
    if booking.payment_status == PaymentStatus.UNPAID and configured():
        booking = open_checkout(booking=booking)
    return booking


def checkout(*, booking: Booking, by) -> Booking:
    """The booking's open Checkout Session, or a new one if its hold lapsed and a seat is free."""
    if not configured():
        raise PaymentsNotConfigured()
    if booking.payment_status != PaymentStatus.UNPAID:
        raise NotPayable(f"This booking is already {booking.payment_status}.")
    if booking.checkout_session_id and booking.holds_seat():
        return booking
    booking = booking_service.renew_hold(booking=booking, by=by)
    return open_checkout(booking=booking)


def open_checkout(*, booking: Booking) -> Booking:
    """Create the hold's Checkout Session. If Stripe fails, the hold is released at once."""
    expires_at = _session_expiry(booking.hold_expires_at)
    try:
        session = stripe.checkout.Session.create(
            **_session_params(booking, expires_at),
            # Same hold and seats, same key: a retried call returns the same session, never a
            # second one (a seat cancelled since asks for a new session, with a new key).
            idempotency_key=(
                f"ahoum-checkout-{booking.pk}-{int(booking.hold_expires_at.timestamp())}"
                f"-{booking.seats}"
            ),
            api_key=settings.STRIPE_SECRET_KEY,
        )
    except stripe.StripeError as error:
        logger.warning(
            "checkout session for booking %s failed: %s", booking.pk, type(error).__name__
        )
        # Its own change name: the person got the error at once, no "seat released" email.
        booking_service.release_hold(
            booking_id=booking.pk,
            reason="payment provider failed at checkout",
            change="booking.checkout_failed",
        )
        if (
            isinstance(error, stripe.APIConnectionError | stripe.RateLimitError)
            or (getattr(error, "http_status", None) or 500) >= 500
        ):
            raise PaymentProviderUnavailable() from error
        raise PaymentProviderError() from error
    logger.info("checkout session %s opened for booking %s", session.id, booking.pk)
    return attach_checkout(
        booking_id=booking.pk,
        amount=booking.amount,
        session_id=session.id,
        url=session.url,
        expires_at=datetime.fromtimestamp(session.expires_at, tz=UTC),
    )


def _session_expiry(hold_expires_at: datetime) -> datetime:
    """The hold's end, but at least Stripe's minimum session lifetime from now.

    Rounded up to the minute, so a retried call for the same hold sends the same parameters
    with the same idempotency key (Stripe refuses a reused key with other parameters).
    """
    now = timezone.now()
    expiry = min(max(hold_expires_at, now + SESSION_MIN_LIFETIME), now + SESSION_MAX_LIFETIME)
    if expiry.second or expiry.microsecond:
        expiry = expiry.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return expiry


def _session_params(booking: Booking, expires_at: datetime) -> dict:
    event = booking.event
    metadata = {
        "user_id": booking.user_id,
        "event_id": booking.event_id,
        "facilitator_id": booking.facilitator_id,
        "booking_id": booking.pk,
    }
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": booking.seats,
                "price_data": {
                    "currency": booking.currency.lower(),
                    "unit_amount": minor_units(booking.seat_price, booking.currency),
                    "product_data": {
                        "name": event.title,
                        "description": f"{event.starts_at:%Y-%m-%d %H:%M} UTC, {event.location}",
                    },
                },
            }
        ],
        "customer_email": booking.user.email,
        "client_reference_id": str(booking.pk),
        "metadata": metadata,
        # The payment intent (and so its charge and refunds) carries the same trace.
        "payment_intent_data": {"metadata": metadata},
        "expires_at": int(expires_at.timestamp()),
        "success_url": settings.CHECKOUT_SUCCESS_URL,
        "cancel_url": settings.CHECKOUT_CANCEL_URL,
    }


# --- Webhook outcomes -------------------------------------------------------------------------


def receive_stripe_event(*, event_id: str, event_type: str) -> None:
    """Owe the application of a verified Stripe event: a receipt and its first attempt's task.

    Call inside dj-stripe's transaction that stores the event. Once per event id.
    """
    receipt, created = StripeEventReceipt.objects.get_or_create(
        stripe_event_id=event_id,
        defaults={"event_type": event_type, "next_attempt_at": timezone.now()},
    )
    if created:
        attempts.schedule(receipt, EVENT_POLICY)


def attempt_stripe_event(*, receipt_id: int, after_attempts: int) -> str:
    """Apply a received event, unless another task did; retried after any failure."""
    receipt = attempts.claim(
        StripeEventReceipt, receipt_id, after_attempts=after_attempts, policy=EVENT_POLICY
    )
    if receipt is None:
        status = StripeEventReceipt.objects.filter(pk=receipt_id).values_list("status", flat=True)
        return status.first() or "missing"
    try:
        apply_stripe_event(event_id=receipt.stripe_event_id)
    except Exception as error:  # a lock held too long, a deadlock, the database gone...
        logger.warning("stripe event %s not applied: %r", receipt.stripe_event_id, error)
        return attempts.record_failure(
            StripeEventReceipt,
            receipt.pk,
            attempt=receipt.attempts,
            error=f"{type(error).__name__}: {error}",
            policy=EVENT_POLICY,
        ).status
    return attempts.record_success(StripeEventReceipt, receipt.pk).status


def _event_lease() -> timedelta:
    # Applying is a few short transactions, each bounded by LOCK_TIMEOUT_MS.
    return timedelta(seconds=60 + 10 * settings.LOCK_TIMEOUT_MS / 1000)


def _flag_event_for_staff(receipt: StripeEventReceipt) -> None:
    PaymentIssue.objects.create(
        kind=PaymentIssueKind.STRIPE_EVENT_FAILED,
        detail=(
            f"Stripe event {receipt.stripe_event_id} ({receipt.event_type}) could not be "
            f"applied after {receipt.attempts} attempts: {receipt.last_error}"
        ),
        stripe_object_id=receipt.stripe_event_id,
    )


def apply_stripe_event(*, event_id: str) -> None:
    """Apply one verified, stored Stripe event to its booking. Safe to run more than once."""
    event = StripeEvent.objects.get(id=event_id)
    handler = EVENT_HANDLERS.get(event.type)
    if handler is None:
        return
    logger.info("stripe event %s (%s)", event.id, event.type)
    # When Stripe says it happened, not when the worker got to it (it may have been behind).
    handler(event.data["object"], occurred_at=event.created or timezone.now())


def _session_paid(session: dict, occurred_at: datetime) -> None:
    if session.get("payment_status") != "paid":
        return  # an async payment method: wait for async_payment_succeeded/failed
    booking = _booking_for_session(session)
    if booking is None:
        return
    paid_currency = (session.get("currency") or "").upper()
    paid = session.get("amount_total")
    if paid_currency not in STRIPE_CURRENCIES or not isinstance(paid, int) or paid <= 0:
        logger.error("stripe session %s names no amount for booking %s", session["id"], booking.pk)
        flag_payment_issue(
            booking_id=booking.pk,
            kind=PaymentIssueKind.AMOUNT_MISMATCH,
            detail=f"Session paid {paid!r} {paid_currency!r}: not an amount. Not confirmed.",
            stripe_object_id=session["id"],
        )
        return
    # What Stripe took, recorded as it is: whether it settles the booking is decided under
    # the booking's lock (a seat may be cancelled while this runs).
    record_checkout_payment(
        booking_id=booking.pk,
        session_id=session["id"],
        payment_intent_id=session.get("payment_intent") or "",
        paid_at=occurred_at,
        amount=from_minor_units(paid, paid_currency),
        currency=paid_currency,
    )


def _session_failed(session: dict, occurred_at: datetime) -> None:
    booking = _booking_for_session(session)
    # Only the booking's current session ends its hold: a renewed hold has a newer session.
    if booking is None or booking.checkout_session_id != session["id"]:
        return
    booking_service.release_hold(
        booking_id=booking.pk, reason=f"Stripe checkout {session['id']} ended"
    )


def _charge_refunded(charge: dict, occurred_at: datetime) -> None:
    payment = (
        Payment.objects.select_related("booking")
        .filter(payment_intent_id=charge.get("payment_intent") or "-")
        .first()
    )
    if payment is None:
        logger.warning(
            "charge.refunded for unknown payment intent %s", charge.get("payment_intent")
        )
        return
    if not payment.settles_booking:
        return  # a second payment of the booking, refunded by its own Refund row
    booking = payment.booking
    refunded = charge.get("amount_refunded", 0)
    if refunded < charge.get("amount", 0):
        if refunded <= minor_units(refunds.owed_for(booking, payment), payment.currency):
            return  # seats of a group booking refunded by their own Refund rows
        flag_payment_issue(
            booking_id=booking.pk,
            kind=PaymentIssueKind.AMOUNT_MISMATCH,
            detail=f"Partial refund in Stripe ({charge.get('amount_refunded')} of "
            f"{charge.get('amount')}); the booking is unchanged.",
            stripe_object_id=charge.get("id", ""),
        )
        return
    if booking.payment_status == PaymentStatus.PAID:
        refunds.mark_refunded(booking_id=booking.pk, reason="refunded in Stripe (charge.refunded)")


def _refund_failed(stripe_refund: dict, occurred_at: datetime) -> None:
    """Stripe could not return the money after accepting the refund (a closed card, say):
    the refund is handed to staff (a payment issue) and the booking shows it failed.
    https://docs.stripe.com/refunds#failed-refunds"""
    if stripe_refund.get("status") != "failed":
        return  # refund.updated for another change
    refunds.refund_failed_in_stripe(
        stripe_refund_id=stripe_refund.get("id") or "",
        reason=stripe_refund.get("failure_reason") or "unknown",
    )


def _booking_for_session(session: dict) -> Booking | None:
    reference = session.get("client_reference_id") or (session.get("metadata") or {}).get(
        "booking_id"
    )
    booking = None
    if reference and str(reference).isdigit():
        booking = Booking.objects.filter(pk=int(reference)).first()
    if booking is None:
        logger.error("stripe session %s names no known booking (%r)", session.get("id"), reference)
        flag_payment_issue(
            booking_id=None,
            kind=PaymentIssueKind.UNKNOWN_BOOKING,
            detail=f"Checkout session names booking {reference!r}, which does not exist.",
            stripe_object_id=session.get("id", ""),
        )
    return booking


EVENT_HANDLERS = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": _session_failed,
    "checkout.session.expired": _session_failed,
    "charge.refunded": _charge_refunded,
    "refund.failed": _refund_failed,
    "refund.updated": _refund_failed,
}

EVENT_POLICY = attempts.Policy(
    task=tasks.attempt_stripe_event,
    lease=_event_lease,
    next_attempt=attempts.backoff(
        max_attempts="STRIPE_EVENT_MAX_ATTEMPTS",
        base_seconds="STRIPE_EVENT_RETRY_BASE_SECONDS",
        max_seconds="STRIPE_EVENT_RETRY_MAX_DELAY_SECONDS",
    ),
    on_give_up=_flag_event_for_staff,
)


# --- Sessions no longer payable -------------------------------------------------------------


def attempt_session_expiry(*, expiry_id: int, after_attempts: int) -> str:
    """Expire a Checkout Session that must no longer be paid, unless another task did.

    https://docs.stripe.com/api/checkout/sessions/expire. Expiring twice is harmless: Stripe
    answers the second with "not open", which is as good as done.
    """
    expiry = attempts.claim(
        CheckoutSessionExpiry, expiry_id, after_attempts=after_attempts,
        policy=SESSION_EXPIRY_POLICY,
    )  # fmt: skip
    if expiry is None:
        status = CheckoutSessionExpiry.objects.filter(pk=expiry_id).values_list("status", flat=True)
        return status.first() or "missing"
    session_id = expiry.checkout_session_id
    try:
        if configured():
            stripe.checkout.Session.expire(session_id, api_key=settings.STRIPE_SECRET_KEY)
    except stripe.InvalidRequestError as error:
        # Only an open session can be expired: it was paid, or expired, already.
        logger.info("checkout session %s not expired: %s", session_id, error.user_message)
    except Exception as error:
        logger.warning("expiring checkout session %s failed: %r", session_id, error)
        return attempts.record_failure(
            CheckoutSessionExpiry,
            expiry.pk,
            attempt=expiry.attempts,
            error=f"{type(error).__name__}: {error}",
            policy=SESSION_EXPIRY_POLICY,
        ).status
    return attempts.record_success(CheckoutSessionExpiry, expiry.pk).status


# Retried as refunds are (the same Stripe calls' lease and backoff); a session that cannot be
# expired still expires at its `expires_at`, and a payment made on it meanwhile is refunded.
SESSION_EXPIRY_POLICY = attempts.Policy(
    task=tasks.attempt_session_expiry,
    lease=refunds.stripe_call_lease,
    next_attempt=attempts.backoff(
        max_attempts="REFUND_MAX_ATTEMPTS",
        base_seconds="REFUND_RETRY_BASE_SECONDS",
        max_seconds="REFUND_RETRY_MAX_DELAY_SECONDS",
    ),
)


# --- Payment state ---------------------------------------------------------------------------


def mark_paid(*, booking_id: int, actor=None, reason: str = "payment received") -> Booking:
    """Record that the booking's amount was received outside Stripe (staff, the CRM).

    Confirmed when it still has (or can retake) its seat; otherwise `paid` without a seat and
    owed back. Its open Checkout Session is expired, so the person cannot pay twice; should a
    payment still arrive there, it is refunded (`record_checkout_payment`). Recording the same
    payment twice changes nothing.
    """
    now = timezone.now()
    with service_transaction():
        booking = booking_service.lock_with_event(booking_id, missing=Booking.DoesNotExist)
        if booking.payment_status != PaymentStatus.UNPAID:
            return booking  # already paid, refunded or free: a replay
        settle(booking, payment=None, paid_at=now, actor=actor, reason=reason, now=now)
        expire_open_checkout(booking)
    return booking


def record_checkout_payment(
    *,
    booking_id: int,
    session_id: str,
    payment_intent_id: str,
    paid_at: datetime,
    amount: Decimal | None = None,
    currency: str | None = None,
) -> Payment:
    """Record a paid Checkout Session of the booking, once; the `Payment`.

    The first payment of an unpaid booking settles it, judged by `paid_at` (when Stripe says
    it was paid, not when this runs): paid before the hold ended confirms the booking even if
    the hold lapsed since. Any other payment (the booking was paid already, by another session
    or outside Stripe) is refunded in full and flagged for staff. So is a payment whose
    `amount` and `currency` (what Stripe took; the booking's by default) are not the booking's
    as it is now (a session for seats cancelled since, or a tampered one): never kept.
    """
    now = timezone.now()
    with service_transaction():
        booking = booking_service.lock_with_event(booking_id, missing=Booking.DoesNotExist)
        payment = Payment.objects.filter(checkout_session_id=session_id).first()
        if payment is not None:
            return payment  # Stripe's second event for the same session, or a replay
        amount = booking.amount if amount is None else amount
        currency = currency or booking.currency
        owed = minor_units(booking.amount, booking.currency)
        matches = currency == booking.currency and minor_units(amount, currency) == owed
        payment = Payment.objects.create(
            booking=booking,
            checkout_session_id=session_id,
            payment_intent_id=payment_intent_id,
            amount=amount,
            currency=currency,
            paid_at=paid_at,
            settles_booking=booking.payment_status == PaymentStatus.UNPAID and matches,
            created_at=now,
        )
        if payment.settles_booking:
            booking.payment_intent_id = payment_intent_id
            if booking.checkout_session_id != session_id:
                expire_open_checkout(booking)  # a renewed hold's session: no longer payable
            settle(
                booking,
                payment=payment,
                paid_at=paid_at,
                actor=None,
                reason=f"paid through Stripe Checkout {session_id}",
                now=now,
                extra_fields={"payment_intent_id"},
            )
        else:
            if booking.payment_status == PaymentStatus.UNPAID:
                kind, reason = PaymentIssueKind.AMOUNT_MISMATCH, "paid another amount"
                why = (
                    f"paid {payment.amount} {payment.currency}; the booking is "
                    f"{booking.amount} {booking.currency}. Not confirmed"
                )
            else:
                kind, reason = PaymentIssueKind.DUPLICATE_PAYMENT, "paid twice"
                why = f"was paid while the booking was already {booking.payment_status}"
            logger.error("checkout session %s of booking %s %s", session_id, booking.pk, why)
            refunds.owe(booking=booking, payment=payment, reason=reason, now=now)
            flag_payment_issue(
                booking_id=booking.pk,
                kind=kind,
                detail=f"Checkout Session {session_id} {why}; it is being refunded in full.",
                stripe_object_id=session_id,
            )
    return payment


def attach_checkout(
    *,
    booking_id: int,
    session_id: str,
    url: str,
    expires_at: datetime,
    amount: Decimal | None = None,
) -> Booking:
    """Store a hold's Checkout Session; the hold lasts as long as the session can be paid.

    `amount`: what the session charges. A booking that changed while Stripe answered (a seat
    cancelled, paid another way, cancelled) does not take it: it is expired instead.
    """
    with service_transaction():
        booking = Booking.objects.select_for_update(no_key=True).get(pk=booking_id)
        payable = (
            booking.status == BookingStatus.PENDING
            and booking.payment_status == PaymentStatus.UNPAID
        )
        if not payable or (amount is not None and amount != booking.amount):
            expire_session(booking, session_id)
            return booking
        booking.checkout_session_id = session_id
        booking.checkout_url = url
        fields = ["checkout_session_id", "checkout_url", "updated_at"]
        if booking.status == BookingStatus.PENDING and expires_at > booking.hold_expires_at:
            booking.hold_expires_at = expires_at
            fields.append("hold_expires_at")
        booking.save(update_fields=fields)
    return booking


def flag_payment_issue(
    *, booking_id: int | None, kind: str, detail: str, stripe_object_id: str = ""
) -> PaymentIssue:
    """Record something about a payment that staff must review (never auto-resolved)."""
    return PaymentIssue.objects.create(
        booking_id=booking_id, kind=kind, detail=detail, stripe_object_id=stripe_object_id
    )


def settle(
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
        booking_service.transition(
            booking,
            status=BookingStatus.CONFIRMED,
            payment_status=PaymentStatus.PAID,
            actor=actor,
            reason=reason if booking.holds_seat(now) else f"{reason}; a seat was still free",
            now=now,
            extra_fields=extra_fields,
        )
    elif paid_in_time and not booking_service.booked_again(booking):
        booking_service.transition(
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
                f"taken: {event.title} now has {booking.seats} seat(s) more than its capacity."
            ),
        )
    else:
        booking_service.transition(
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


def expire_open_checkout(booking: Booking) -> None:
    """Owe the expiry of the booking's Checkout Session, made by the worker (`payments`)."""
    if booking.checkout_session_id:
        expire_session(booking, booking.checkout_session_id)


def expire_session(booking: Booking, session_id: str) -> None:
    """Owe the expiry of one Checkout Session of the booking (once per session)."""
    expiry, created = CheckoutSessionExpiry.objects.get_or_create(
        checkout_session_id=session_id,
        defaults={"booking": booking, "next_attempt_at": timezone.now()},
    )
    if created:
        attempts.schedule(expiry, SESSION_EXPIRY_POLICY)


def _can_retake_seat(booking: Booking, event: Event, now: datetime) -> bool:
    """Whether a lapsed hold being paid can have a seat (its own, or a free one)."""
    if event.status != EventStatus.SCHEDULED or event.starts_at <= now:
        return False
    if booking_service.booked_again(booking):
        return False
    # Still pending: it is still in the counter; expired: it needs a free seat again.
    counted = booking if booking.status == BookingStatus.PENDING else None
    return booking_service.has_free_seats(event, now, booking.seats, counted=counted)
