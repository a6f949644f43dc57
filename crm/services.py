"""Every CRM state change: deliveries going out, and notifications coming in.

Deliveries. `queue_booking_notification` runs inside a booking change's transaction and only
writes a `Delivery` row; after the commit, `wake_dispatcher` makes sure a dispatch task runs
within CRM_DISPATCH_SECONDS (one per period and process, not one per delivery), and the
dispatch makes each waiting delivery's first attempt. `attempt_delivery` claims one attempt
in a short transaction, makes the HTTP call with no transaction or lock open, then records
the outcome in another: delivered, failed (refused), a retry at a backed-off time (a task),
or gave up.

Notifications in. `receive_notification` stores a notification as its booking's `CRMBooking`
state (unless a newer one is stored) and in its history, once per webhook-id, queues its
forward, and marks the booking paid when the notification says so and matches it.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ahoum import compiled
from ahoum.db import service_transaction
from ahoum.retry import backoff_seconds
from bookings import services as booking_services
from bookings.models import Booking, BookingAudit, PaymentStatus
from crm import client, signing, tasks
from crm.exceptions import BookingMismatch
from crm.models import CRMBooking, CRMNotification, Delivery, DeliveryKind, DeliveryStatus

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000
# Deliveries one dispatch task attempts before it leaves the rest to the next one.
DISPATCH_BATCH = 50
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
    delivery = _claim_attempt(delivery_id=delivery_id, after_attempts=after_attempts)
    if delivery is None:
        status = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True)
        return status.first() or "missing"
    body = client.json_body(delivery.payload)
    outcome = client.post(
        url=delivery.target_url,
        body=body,
        headers=_request_headers(delivery, body),
        timeout=settings.CRM_TIMEOUT_SECONDS,
    )
    delivery = _record_attempt(delivery_id=delivery.pk, attempt=delivery.attempts, outcome=outcome)
    return delivery.status


def redeliver(*, delivery_id: int) -> bool:
    """Send an undelivered delivery again now, with a fresh retry window (the admin's action).

    It goes to the currently configured URL for its kind (so fixing a wrong URL and
    redelivering works), or to its old one if that setting is now empty. False if it was
    already delivered: the receiver has it.
    """
    now = timezone.now()
    with service_transaction():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status == DeliveryStatus.DELIVERED:
            return False
        delivery.target_url = _configured_target(delivery.kind) or delivery.target_url
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now
        delivery.retry_until = now + _retry_window()
        delivery.save(
            update_fields=["target_url", "status", "next_attempt_at", "retry_until", "updated_at"]
        )
        tasks.send_delivery.enqueue(delivery.pk, delivery.attempts)
    logger.info("delivery %s queued again by staff", delivery.pk)
    return True


def dispatch_first_attempts(*, limit: int = DISPATCH_BATCH) -> int:
    """Make the first attempt of up to `limit` deliveries waiting for one, oldest first.

    The dispatch task's work (`wake_dispatcher`). A full batch enqueues the next dispatch
    first, so another worker starts on the rest meanwhile; two dispatches that meet on one
    delivery make its attempt once (`_claim_attempt`). How many deliveries it took.
    """
    waiting = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if len(waiting) == limit:
        tasks.dispatch_deliveries.enqueue()
    for delivery_id in waiting:
        attempt_delivery(delivery_id=delivery_id, after_attempts=0)
    return len(waiting)


def wake_dispatcher() -> None:
    """Make sure a dispatch runs after the delivery just committed, within CRM_DISPATCH_SECONDS.

    Called after the commit (`_queue_delivery`), in autocommit: any dispatch that starts
    from now on sees the delivery. So one task per period and process wakes the worker for
    every delivery of that period, instead of a task row per delivery inside each booking
    change (the costliest write of a booking with a CRM configured, bench/README.md step 17).
    A dispatch this process enqueued that is due at least half a period from now will do
    (half a period of slack for clocks between hosts); otherwise it enqueues one due a
    period from now.
    """
    global _dispatch_due
    period = settings.CRM_DISPATCH_SECONDS
    now = time.time()
    if period and _dispatch_due - now >= period / 2:
        return
    due = now + period
    tasks.dispatch_deliveries.using(run_after=datetime.fromtimestamp(due, UTC)).enqueue()
    _dispatch_due = due


# When the last dispatch this process enqueued is due (epoch seconds).
_dispatch_due = 0.0


def _queue_delivery(**fields: Any) -> Delivery:
    now = timezone.now()
    # Inside every booking change's transaction: an INSERT compiled once (no save signals;
    # none are used), as the booking's own rows. No task: the dispatcher is woken after the
    # commit. Should that wake-up fail (or the process die between commit and wake-up), the
    # next dispatch of any process takes this delivery too.
    delivery = compiled.insert(
        Delivery(
            webhook_id=signing.new_webhook_id(),
            next_attempt_at=now,
            retry_until=now + _retry_window(),
            created_at=now,
            **fields,
        )
    )
    _wake_dispatcher_after_commit()
    return delivery


def _wake_dispatcher_after_commit() -> None:
    # robust: a failed wake-up is logged, never turned into an error for a committed change.
    transaction.on_commit(wake_dispatcher, robust=True)


def _claim_attempt(*, delivery_id: int, after_attempts: int) -> Delivery | None:
    """Count the next attempt as started, if it is due and nobody started it. None: skip.

    The claim carries a lease: if its outcome is never recorded (the worker died mid-call),
    the task enqueued here makes the next attempt when the lease ends. If the outcome is
    recorded, that task finds the row moved on and does nothing.
    """
    now = timezone.now()
    with service_transaction():
        delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return None
        if delivery.attempts != after_attempts:
            return None  # another task made this attempt
        if delivery.next_attempt_at and delivery.next_attempt_at > now:
            return None  # an attempt is running, or the next one is scheduled later
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + _attempt_lease()
        delivery.save(
            update_fields=["attempts", "last_attempt_at", "next_attempt_at", "updated_at"]
        )
        tasks.send_delivery.using(run_after=delivery.next_attempt_at).enqueue(
            delivery.pk, delivery.attempts
        )
    return delivery


def _record_attempt(*, delivery_id: int, attempt: int, outcome: client.AttemptOutcome) -> Delivery:
    """Record what attempt number `attempt` got; a delivery is recorded delivered only once."""
    now = timezone.now()
    with service_transaction():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status == DeliveryStatus.DELIVERED:
            return delivery
        if outcome.delivered:
            # Even from an attempt whose lease ran out: the receiver has it.
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.last_status_code = outcome.status_code
            delivery.last_error = ""
            delivery.next_attempt_at = None
            logger.info("delivery %s delivered on attempt %s", delivery.pk, attempt)
        elif delivery.attempts != attempt or delivery.status != DeliveryStatus.PENDING:
            return delivery  # a later attempt (or staff) owns the row now
        else:
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error[:MAX_ERROR_LENGTH]
            retry_at = _next_attempt_time(delivery, outcome, now) if outcome.retryable else None
            delivery.next_attempt_at = retry_at
            if retry_at is not None:
                tasks.send_delivery.using(run_after=retry_at).enqueue(delivery.pk, attempt)
            else:
                delivery.status = (
                    DeliveryStatus.GAVE_UP if outcome.retryable else DeliveryStatus.FAILED
                )
            logger.warning(
                "delivery %s attempt %s to %s failed (%s); %s",
                delivery.pk,
                attempt,
                delivery.target_url,
                delivery.last_error,
                f"retry at {retry_at.isoformat()}" if retry_at else delivery.status,
            )
        delivery.save()
    return delivery


def _next_attempt_time(
    delivery: Delivery, outcome: client.AttemptOutcome, now: datetime
) -> datetime | None:
    """Exponential backoff with jitter, at least Retry-After; None if past the retry window."""
    delay = backoff_seconds(
        delivery.attempts,
        base_seconds=settings.CRM_RETRY_BASE_SECONDS,
        max_seconds=settings.CRM_RETRY_MAX_DELAY_SECONDS,
    )
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    if delay > (delivery.retry_until - now).total_seconds():
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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# --- Notifications in --------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    booking_id: int
    duplicate: bool = False
    stored: bool = False
    stale: bool = False
    marked_paid: bool = False
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
        if self.forwarding_queued:
            parts.append("Forwarding queued.")
        return " ".join(parts)


def receive_notification(
    *, data: dict[str, Any], payload: dict[str, Any], webhook_id: str = "", signed: bool = False
) -> Receipt:
    """Store a notification once (per webhook-id, or per payload without one) and act on it.

    `data` is the validated notification, `payload` the JSON as received (stored and
    forwarded as is). A lower sequence than the stored one is kept as history only. When it
    says `payment_status: "paid"`, its booking_id, user_id and event must match one booking,
    which is then marked paid; otherwise `BookingMismatch` and nothing is stored or changed.
    """
    booking_id = data["booking_id"]
    dedupe_key = _dedupe_key(webhook_id, payload)
    if CRMNotification.objects.filter(dedupe_key=dedupe_key).exists():
        return Receipt(booking_id=booking_id, duplicate=True)

    # Before storing, in the bookings' own transaction (services never nest): if storing then
    # fails, the sender's retry arrives here again and marking paid twice changes nothing.
    marked_paid = data.get("payment_status") == PaymentStatus.PAID and _mark_paid(data, webhook_id)

    now = timezone.now()
    forwarding = bool(settings.CRM_FORWARD_URL)
    try:
        with service_transaction():
            crm_booking, created = CRMBooking.objects.get_or_create(
                booking_id=booking_id,
                defaults={**_booking_state(data, payload), "created_at": now, "updated_at": now},
            )
            if not created:
                # The booking's row lock orders its notifications: the sequence check and the
                # duplicate check below see every notification committed before this one.
                crm_booking = CRMBooking.objects.select_for_update().get(pk=crm_booking.pk)
                if CRMNotification.objects.filter(dedupe_key=dedupe_key).exists():
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
                for field, value in _booking_state(data, payload).items():
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
        if CRMNotification.objects.filter(dedupe_key=dedupe_key).exists():
            return Receipt(booking_id=booking_id, duplicate=True)
        raise
    return Receipt(
        booking_id=booking_id,
        stored=True,
        stale=not applied,
        marked_paid=marked_paid,
        forwarding_queued=forwarding,
    )


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


def _booking_state(data: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The CRMBooking fields a notification sets; optional ones only when it carries them."""
    state = {
        "user_name": data["user"]["name"],
        "user_email": data["user"]["email"],
        "event_id": data["event"],
        "facilitator_id": data["facilitator_id"],
        "payload": payload,
    }
    state.update({field: data[field] for field in OPTIONAL_STATE_FIELDS if field in data})
    return state


def _is_current(incoming: int | None, stored: int | None) -> bool:
    """Without sequence numbers the latest wins; with them, never a lower one than stored."""
    return incoming is None or stored is None or incoming >= stored


def _dedupe_key(webhook_id: str, payload: Any) -> str:
    if webhook_id:
        return f"id:{webhook_id}"
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
