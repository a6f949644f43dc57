"""Deliveries out: booking and waitlist notifications to the CRM, and forwards of what the
receiver stored.

`on_booking_changed` and `on_waitlist_changed` (connected to `bookings.signals` in apps.py)
run inside a booking's or waitlist entry's change's transaction: each writes a `Delivery` row
and enqueues its first attempt, both committed with the change. The receiver queues a
forward the same way, inside the transaction that stores the notification (`queue_forward`).
Attempts go through the shared mechanism (`ahoum.attempts`): `attempt_delivery` claims one in
a short transaction with a lease, makes the HTTP call with no transaction or lock open, then
records the outcome in another: delivered (`succeeded`), a retry at a backed-off time (a
task), or `gave_up` (refused, or failing past CRM_RETRY_HOURS). A worker that dies mid-call
is taken over when the lease ends; the repeat carries the same `webhook-id`, which the
receiver deduplicates. Each attempt carries the bearer token and a Standard Webhooks
signature (`crm.signing`).
"""

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from ahoum import attempts
from ahoum.retry import backoff_seconds
from bookings.models import Booking, BookingAudit, WaitlistEntry
from crm import client, signing, tasks
from crm.models import CRMNotification, Delivery, DeliveryKind

logger = logging.getLogger(__name__)


def on_booking_changed(sender, booking: Booking, audit: BookingAudit, **kwargs) -> None:
    """`booking_changed`'s receiver, sent inside the change's transaction.

    Only rows are written here (a delivery and its task), no network call: they commit or
    roll back with the booking change, and the worker sends after commit.
    """
    queue_booking_notification(booking=booking, audit=audit)


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


def on_waitlist_changed(
    sender, entry: WaitlistEntry, change: str, occurred_at: datetime, **kwargs
) -> None:
    """`waitlist_changed`'s receiver, sent inside the change's transaction: rows only."""
    queue_waitlist_notification(entry=entry, change=change, occurred_at=occurred_at)


def queue_waitlist_notification(
    *, entry: WaitlistEntry, change: str, occurred_at: datetime
) -> Delivery | None:
    """Queue the CRM notification of one waitlist change. Call inside that change's transaction.

    As a booking's: the payload is built now and stored; the entry's version is its sequence.
    None when disabled.
    """
    if not settings.CRM_WEBHOOK_URL:
        return None
    return _queue_delivery(
        kind=DeliveryKind.NOTIFICATION,
        target_url=settings.CRM_WEBHOOK_URL,
        payload=waitlist_payload(entry=entry, change=change, occurred_at=occurred_at),
        event_type=change,
        waitlist_entry_id=entry.pk,
        sequence=entry.version,
    )


def queue_forward(*, notification: CRMNotification, payload: dict[str, Any]) -> Delivery:
    """Queue the forward of a stored notification, as received, to CRM_FORWARD_URL. Call inside
    the transaction that stores it."""
    if notification.crm_waitlist_entry is not None:
        subject = {"waitlist_entry_id": notification.crm_waitlist_entry.waitlist_entry_id}
    else:
        subject = {"booking_id": notification.crm_booking.booking_id}
    return _queue_delivery(
        kind=DeliveryKind.FORWARD,
        target_url=settings.CRM_FORWARD_URL,
        payload=payload,
        event_type=notification.type,
        sequence=notification.sequence,
        notification=notification,
        **subject,
    )


# The change of one seat of a group cancelled on its own (the booking stays active).
ATTENDEE_CANCELLED = "booking.attendee_cancelled"


def booking_payload(*, booking: Booking, audit: BookingAudit) -> dict[str, Any]:
    """The notification of `audit`'s change: the original's keys plus Ahoum's additions."""
    event, user = booking.event, booking.user
    # One query, or none when the caller prefetched them (a cancelled event's batch, which
    # changes no seat); a seat cancelled alone is saved before its change is announced.
    seats = booking.attendees.all()
    payload = {
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
        # Seats held after the change; a booking cancelled whole keeps those it held then.
        "seats": booking.seats,
        "attendees": [
            {
                "id": seat.pk,
                "name": seat.name,
                "email": seat.email,
                "status": seat.status_in(booking),
            }
            for seat in seats
        ],
    }
    if audit.change == ATTENDEE_CANCELLED and audit.attendee_id is not None:
        cancelled = audit.attendee
        payload["attendee"] = {
            "id": cancelled.pk,
            "name": cancelled.name,
            "email": cancelled.email,
        }
    return payload


def waitlist_payload(*, entry: WaitlistEntry, change: str, occurred_at: datetime) -> dict[str, Any]:
    """The notification of a waitlist change (`type` "waitlist.*"), as the entry is committed."""
    event, user = entry.event, entry.user
    return {
        "type": change,
        "waitlist_entry_id": entry.pk,
        "user": {"name": user.name, "email": user.email},
        "user_id": entry.user_id,
        "event": entry.event_id,
        "event_title": event.title,
        "starts_at": _iso(event.starts_at),
        "facilitator_id": event.facilitator_id,
        "seats": entry.seats,
        "status": entry.status,
        "offer_expires_at": _iso(entry.offer_expires_at) if entry.offer_expires_at else None,
        # The booking an accepted offer became; null before.
        "booking_id": entry.booking_id,
        "occurred_at": _iso(occurred_at),
        "sequence": entry.version,
        # Why it ended: "offer not taken in time", "event cancelled", "declined", "left".
        "reason": entry.reason,
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
    delivery = Delivery.objects.create(
        webhook_id=signing.new_webhook_id(),
        next_attempt_at=now,
        retry_until=now + _retry_window(),
        created_at=now,
        **fields,
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
