"""Every CRM state change: deliveries going out, and notifications coming in.

Deliveries. `queue_booking_notification` runs inside a booking change's transaction: it
writes a `Delivery` row and enqueues its first attempt, both committed with the change.
Attempts go through the shared mechanism (`ahoum.attempts`): `attempt_delivery` claims one
in a short transaction with a lease, makes the HTTP call with no transaction or lock open,
then records the outcome in another: delivered (`succeeded`), a retry at a backed-off time
(a task), or `gave_up` (refused, or failing past CRM_RETRY_HOURS). A worker that dies
mid-call is taken over when the lease ends; the repeat carries the same `webhook-id`, which
the receiver deduplicates.

Notifications in. `receive_notification` stores a notification as its booking's `CRMBooking`
state (unless a newer one is stored) and in its history, once per webhook-id, queues its
forward, and marks the booking paid when the notification says so, matches it, and is signed
with the payment signing key (CRM_INBOUND_SIGNING_SECRET). The receiver's bearer secret, as a
token or as a signing key, only stores for review: it travels in every bearer request's
headers (and, while CRM_INBOUND_SECRET is unset, in every notification Ahoum sends), so
whoever sees one request can reuse it. The payment signing key is never a bearer token, never
sent, and settings refuse it equal to one; a Standard Webhooks signature with it covers the
body and expires in 5 minutes. Unset, nothing marks a booking paid.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from ahoum import attempts, compiled
from ahoum.db import service_transaction
from ahoum.retry import backoff_seconds
from bookings import services as booking_services
from bookings.models import Booking, BookingAudit, PaymentStatus
from crm import client, signing, tasks
from crm.exceptions import BookingMismatch
from crm.models import CRMBooking, CRMNotification, Delivery, DeliveryKind
from crm.permissions import payment_signing_secret

logger = logging.getLogger(__name__)

# CRMBooking fields set from a notification only when it carries them (the original's payload
# has none of them, and must not wipe what an earlier, fuller notification stored).
OPTIONAL_STATE_FIELDS = (
    "user_id",
    "event_title",
    "starts_at",
    "type",
    "status",
    "payment_status",
    "amount",
    "currency",
    "sequence",
)


# --- Deliveries -------------------------------------------------------------------------------


def queue_booking_notification(*, booking: Booking, audit: BookingAudit) -> Delivery | None:
    """Queue the CRM notification of one booking change. Call inside that change's transaction.

    The payload is built now, from the state being committed, and stored on the delivery:
    later changes get their own deliveries and never alter this one. None when disabled.
    """
    if not settings.CRM_WEBHOOK_URL:
        return None
    return _queue_delivery(
        kind=DeliveryKind.NOTIFICATION,
        target_url=settings.CRM_WEBHOOK_URL,
        payload=booking_payload(booking=booking, audit=audit),
        event_type=audit.change,
        booking_id=booking.pk,
        sequence=audit.version,
    )


def booking_payload(*, booking: Booking, audit: BookingAudit) -> dict[str, Any]:
    """The notification of `audit`'s change: the original's keys plus Ahoum's additions."""
    event, user = booking.event, booking.user
    return {
        "type": audit.change,
        "booking_id": booking.pk,
        "user": {"name": user.name, "email": user.email},
        "user_id": booking.user_id,
        "event": booking.event_id,
        "event_title": event.title,
        "starts_at": _iso(event.starts_at),
        "facilitator_id": booking.facilitator_id,
        "status": audit.to_status,
        "payment_status": audit.to_payment_status,
        "amount": str(Decimal(booking.amount).quantize(Decimal("0.01"))),
        "currency": booking.currency,
        "occurred_at": _iso(audit.created_at),
        "sequence": audit.version,
        # Why it changed; for an event cancelled by its facilitator, their reason.
        "reason": audit.reason,
    }


def attempt_delivery(*, delivery_id: int, after_attempts: int) -> str:
    """Make a delivery's attempt number `after_attempts + 1`, unless it was made or is not due.

    Returns the delivery's status afterwards. Never raises for the receiver's failures; they
    are recorded on the row and retried.
    """
    delivery = attempts.claim(Delivery, delivery_id, after_attempts=after_attempts, policy=POLICY)
    if delivery is None:
        status = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True)
        return status.first() or "missing"
    try:
        body = client.json_body(delivery.payload)
        outcome = client.post(
            url=delivery.target_url,
            body=body,
            headers=_request_headers(delivery, body),
            timeout=settings.CRM_TIMEOUT_SECONDS,
        )
    except Exception as error:  # client.post raises nothing of its own; anything else is a bug
        outcome = client.AttemptOutcome(
            delivered=False, retryable=True, error=f"{type(error).__name__}: {error}"
        )
    if outcome.delivered:
        logger.info("delivery %s delivered on attempt %s", delivery.pk, delivery.attempts)
        delivery = attempts.record_success(
            Delivery, delivery.pk, last_status_code=outcome.status_code
        )
    else:
        delivery = attempts.record_failure(
            Delivery,
            delivery.pk,
            attempt=delivery.attempts,
            error=outcome.error,
            policy=POLICY,
            retryable=outcome.retryable,
            retry_after=outcome.retry_after,
            last_status_code=outcome.status_code,
        )
    return delivery.status


def redeliver(*, delivery_id: int) -> bool:
    """Send an undelivered delivery again now, with a fresh retry window (the admin's action).

    It goes to the currently configured URL for its kind (so fixing a wrong URL and
    redelivering works), or to its old one if that setting is now empty. False if it was
    already delivered (the receiver has it) or an attempt is under way.
    """
    delivery = Delivery.objects.get(pk=delivery_id)
    reopened = attempts.reopen(
        Delivery,
        delivery_id,
        policy=POLICY,
        target_url=_configured_target(delivery.kind) or delivery.target_url,
        retry_until=timezone.now() + _retry_window(),
    )
    if reopened is not None:
        logger.info("delivery %s queued again by staff", delivery_id)
    return reopened is not None


def _queue_delivery(**fields: Any) -> Delivery:
    now = timezone.now()
    # Inside every booking change's transaction: an INSERT compiled once (no save signals;
    # none are used), as the booking's own rows, and its first attempt's task.
    delivery = compiled.insert(
        Delivery(
            webhook_id=signing.new_webhook_id(),
            next_attempt_at=now,
            retry_until=now + _retry_window(),
            created_at=now,
            **fields,
        )
    )
    attempts.schedule(delivery, POLICY)
    return delivery


def _next_attempt_time(
    delivery: Delivery, now: datetime, retry_after: float | None
) -> datetime | None:
    """Exponential backoff with jitter, at least Retry-After; None if past the retry window."""
    delay = backoff_seconds(
        delivery.attempts,  # as attempts.backoff: a lost attempt counts too
        base_seconds=settings.CRM_RETRY_BASE_SECONDS,
        max_seconds=settings.CRM_RETRY_MAX_DELAY_SECONDS,
    )
    if retry_after is not None:
        delay = max(delay, retry_after)
    if now + timedelta(seconds=delay) > delivery.retry_until:
        return None
    return now + timedelta(seconds=delay)


def _request_headers(delivery: Delivery, body: bytes) -> dict[str, str]:
    """Bearer token and Standard Webhooks signature, both from the secret of the delivery's kind.

    Signed per attempt (the timestamp is the attempt's), with the delivery's fixed webhook-id.
    """
    secret = (
        settings.CRM_WEBHOOK_SECRET
        if delivery.kind == DeliveryKind.NOTIFICATION
        else settings.CRM_FORWARD_TOKEN
    )
    if not secret:
        return {"webhook-id": delivery.webhook_id}
    return {
        "Authorization": f"Bearer {secret}",
        **signing.signed_headers(secret=secret, webhook_id=delivery.webhook_id, body=body),
    }


def _configured_target(kind: str) -> str:
    if kind == DeliveryKind.NOTIFICATION:
        return settings.CRM_WEBHOOK_URL
    return settings.CRM_FORWARD_URL


def _retry_window() -> timedelta:
    return timedelta(hours=settings.CRM_RETRY_HOURS)


def _attempt_lease() -> timedelta:
    # Longer than an attempt normally takes (connect and read timeouts, plus a margin). The read
    # timeout is per gap between bytes, so a trickling answer can outlast it: the attempt is
    # then made again, and the receiver drops the repeat by its webhook-id.
    return timedelta(seconds=3 * settings.CRM_TIMEOUT_SECONDS + 30)


POLICY = attempts.Policy(
    task=tasks.send_delivery, lease=_attempt_lease, next_attempt=_next_attempt_time
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# --- Notifications in --------------------------------------------------------------------------

# Why a notification saying "paid" did not mark its booking paid (the receipt's
# `mark_paid_refusal`); None when nothing was refused.
SIGNATURE_REQUIRED = "signature_required"
SIGNING_KEY_NOT_CONFIGURED = "signing_key_not_configured"
MARK_PAID_REFUSALS = {
    SIGNATURE_REQUIRED: (
        "Not marked paid: only a notification signed with the payment signing key "
        "(webhook-id, webhook-timestamp, webhook-signature) marks a booking paid; stored for "
        "review."
    ),
    SIGNING_KEY_NOT_CONFIGURED: (
        "Not marked paid: no payment signing key is configured, so no notification marks a "
        "booking paid; stored for review."
    ),
}


@dataclass(frozen=True)
class Receipt:
    booking_id: int
    duplicate: bool = False
    stored: bool = False
    stale: bool = False
    marked_paid: bool = False
    mark_paid_refusal: str | None = None
    forwarding_queued: bool = False

    @property
    def detail(self) -> str:
        if self.duplicate:
            return "Already received; not stored again."
        parts = [
            "Stored as history only: a newer notification is stored." if self.stale else "Stored."
        ]
        if self.marked_paid:
            parts.append("The booking was marked paid.")
        if self.mark_paid_refusal:
            parts.append(MARK_PAID_REFUSALS[self.mark_paid_refusal])
        if self.forwarding_queued:
            parts.append("Forwarding queued.")
        return " ".join(parts)


def receive_notification(
    *,
    data: dict[str, Any],
    payload: dict[str, Any],
    webhook_id: str = "",
    signed: bool = False,
    signed_for_payment: bool = False,
) -> Receipt:
    """Store a notification once (per webhook-id, or per payload without one) and act on it.

    `data` is the validated notification, `payload` the JSON as received (stored and
    forwarded as is), `signed` whether its signature verified (fresh) with any accepted key,
    `signed_for_payment` whether that key was the payment signing key. A lower sequence than
    the stored one is kept as history only. When one signed for payment says
    `payment_status: "paid"`, its booking_id, user_id and event must match one booking, which
    is then marked paid; otherwise `BookingMismatch` and nothing is stored or changed. Any
    other one saying so is stored for review, looks at no booking and changes none
    (`mark_paid_refusal`).
    """
    booking_id = data["booking_id"]
    dedupe_key = _dedupe_key(webhook_id, payload, signed_for_payment=signed_for_payment)
    repeat_keys = _repeat_keys(dedupe_key, webhook_id)
    if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
        return Receipt(booking_id=booking_id, duplicate=True)

    says_paid = data.get("payment_status") == PaymentStatus.PAID
    refusal = _mark_paid_refusal(signed=signed) if says_paid and not signed_for_payment else None
    # Before storing, in the bookings' own transaction (services never nest): if storing then
    # fails, the sender's retry arrives here again and marking paid twice changes nothing.
    marked_paid = says_paid and signed_for_payment and _mark_paid(data, webhook_id)

    now = timezone.now()
    forwarding = bool(settings.CRM_FORWARD_URL)
    try:
        with service_transaction():
            state = _booking_state(data, payload, signed=signed)
            crm_booking, created = CRMBooking.objects.get_or_create(
                booking_id=booking_id,
                defaults={**state, "created_at": now, "updated_at": now},
            )
            if not created:
                # The booking's row lock orders its notifications: the sequence check and the
                # duplicate check below see every notification committed before this one.
                crm_booking = CRMBooking.objects.select_for_update().get(pk=crm_booking.pk)
                if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
                    return Receipt(booking_id=booking_id, duplicate=True)
            applied = created or _is_current(data.get("sequence"), crm_booking.sequence)
            notification = CRMNotification.objects.create(
                crm_booking=crm_booking,
                webhook_id=webhook_id,
                dedupe_key=dedupe_key,
                signed=signed,
                type=data.get("type", ""),
                sequence=data.get("sequence"),
                status=data.get("status", ""),
                payment_status=data.get("payment_status", ""),
                applied=applied,
                marked_paid=marked_paid,
                payload=payload,
                received_at=now,
            )
            if applied and not created:
                for field, value in state.items():
                    setattr(crm_booking, field, value)
                crm_booking.updated_at = now
                crm_booking.save()
            if forwarding:
                _queue_delivery(
                    kind=DeliveryKind.FORWARD,
                    target_url=settings.CRM_FORWARD_URL,
                    payload=payload,
                    event_type=data.get("type", ""),
                    booking_id=booking_id,
                    sequence=data.get("sequence"),
                    notification=notification,
                )
    except IntegrityError:
        # The same webhook-id for another booking, committed meanwhile: still a duplicate.
        if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
            return Receipt(booking_id=booking_id, duplicate=True)
        raise
    return Receipt(
        booking_id=booking_id,
        stored=True,
        stale=not applied,
        marked_paid=marked_paid,
        mark_paid_refusal=refusal,
        forwarding_queued=forwarding,
    )


def _mark_paid_refusal(*, signed: bool) -> str:
    if signed and not payment_signing_secret():
        return SIGNING_KEY_NOT_CONFIGURED
    return SIGNATURE_REQUIRED


def _mark_paid(data: dict[str, Any], webhook_id: str) -> bool:
    """Mark the matching booking paid; True if this changed it. Raises `BookingMismatch`."""
    booking = Booking.objects.filter(
        pk=data["booking_id"], user_id=data["user_id"], event_id=data["event"]
    ).first()
    if booking is None:
        raise BookingMismatch()
    if booking.payment_status != PaymentStatus.UNPAID:
        return False  # paid already (our own notification coming back), refunded or free
    reference = f" (webhook-id {webhook_id})" if webhook_id else ""
    booking = booking_services.mark_paid(
        booking_id=booking.pk, actor=None, reason=f"marked paid by a CRM notification{reference}"
    )
    logger.info("booking %s marked paid by a CRM notification", booking.pk)
    return True


def _booking_state(
    data: dict[str, Any], payload: dict[str, Any], *, signed: bool
) -> dict[str, Any]:
    """The CRMBooking fields a notification sets; optional ones only when it carries them.

    An unsigned notification's sequence stays in its history but never becomes the stored
    one: otherwise one bearer-token request with sequence 2^31 - 1 would make every later
    notification of the booking stale, freezing what staff see.
    """
    state = {
        "user_name": data["user"]["name"],
        "user_email": data["user"]["email"],
        "event_id": data["event"],
        "facilitator_id": data["facilitator_id"],
        "payload": payload,
    }
    state.update({field: data[field] for field in OPTIONAL_STATE_FIELDS if field in data})
    if not signed:
        state.pop("sequence", None)
    return state


def _is_current(incoming: int | None, stored: int | None) -> bool:
    """Without sequence numbers the latest wins; with them, never a lower one than stored."""
    return incoming is None or stored is None or incoming >= stored


def _dedupe_key(webhook_id: str, payload: Any, *, signed_for_payment: bool) -> str:
    if webhook_id:
        # The webhook-id of a request not signed with the payment signing key (unsigned, or
        # signed with the bearer secret, which travels) is only the caller's word: kept apart,
        # so that it cannot take a payment's id and have it dropped as a repeat (unmarked paid).
        return f"id:{webhook_id}" if signed_for_payment else f"unsigned-id:{webhook_id}"
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _repeat_keys(dedupe_key: str, webhook_id: str) -> list[str]:
    """The stored keys that make a notification a repeat: its own, and for one not signed for
    payment with a webhook-id, a payment-signed message's with that id (the same message, sent
    again)."""
    if dedupe_key.startswith("unsigned-id:"):
        return [dedupe_key, f"id:{webhook_id}"]
    return [dedupe_key]
