"""Cancelling an event, end to end: the event, every booking, every refund.

`cancel_event` (the facilitator's API, the back office, staff) marks the event cancelled
under its row lock, so nobody can book it once that commits, and enqueues
`tasks.settle_cancelled_event`, which cancels its bookings in batches
(`settle_cancelled_event` here, one transaction per batch under the event's lock): paid ones
owe a refund, made by the worker (`refunds`). The request costs the same with two bookings
or two thousand; `summarize_cancellation` says what is done and what the worker has yet to
do. Cancelling again changes nothing, and nothing is settled or refunded twice.
"""

from dataclasses import asdict, dataclass

from django.db.models import Count, Q
from django.utils import timezone

from ahoum.attempts import AttemptStatus
from ahoum.db import service_transaction
from bookings import tasks
from bookings.models import Booking, BookingAudit, Refund
from bookings.services import booking as booking_service
from events.models import Event, EventStatus


@dataclass(frozen=True)
class CancellationSummary:
    event_id: int
    status: str
    refunded: int  # paid bookings whose money went back
    cancelled: int  # unpaid and free bookings cancelled
    refunds_pending: int  # refunds owed that the worker is making (paid bookings included)
    refund_failed: int  # refunds that gave up: staff refund them by hand (a payment issue)
    to_settle: int  # active bookings the worker has yet to cancel

    def as_dict(self) -> dict:
        return asdict(self)


def cancel_event(*, event: Event, by, reason: str = "") -> CancellationSummary:
    """Cancel the event; the worker cancels its bookings and refunds every paid one."""
    with service_transaction():
        # The booking lock: nobody can book once it is cancelled.
        event = Event.objects.select_for_update().get(pk=event.pk)
        if event.status != EventStatus.CANCELLED:
            event.status = EventStatus.CANCELLED
            event.cancelled_at = timezone.now()
            event.cancellation_reason = reason
            event.save(
                update_fields=["status", "cancelled_at", "cancellation_reason", "updated_at"]
            )
            tasks.settle_cancelled_event.enqueue(event.pk, by.pk if by else None)
    return summarize_cancellation(event)


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
            .prefetch_related("payments", "refunds", "attendees")
            .order_by("pk")[:limit]
        )
        cancelled = 0
        for booking in batch:
            booking.event = event
            booking_service.cancel_locked(
                booking,
                actor_id=by_id,
                reason=f"event cancelled: {reason}" if reason else "event cancelled",
                now=now,
                change="booking.event_cancelled",
            )
            cancelled += 1
    return cancelled


def summarize_cancellation(event: Event) -> CancellationSummary:
    """Count what the event's cancellation did so far, in three queries."""
    cancelled_ids = BookingAudit.objects.filter(
        booking__event=event, change="booking.event_cancelled"
    ).values("booking_id")
    # The refunds of the bookings' own money (not a second payment's refund, nor a seat of a
    # group refunded on its own before: one refund per booking the cancellation paid back).
    refunds = (
        Refund.objects.filter(booking_id__in=cancelled_ids, attendee__isnull=True)
        .exclude(payment__settles_booking=False)
        .aggregate(
            succeeded=Count("pk", filter=Q(status=AttemptStatus.SUCCEEDED)),
            gave_up=Count("pk", filter=Q(status=AttemptStatus.GAVE_UP)),
            owed=Count("pk"),
            bookings=Count("booking_id", distinct=True),
        )
    )
    counts = Booking.objects.filter(event=event).aggregate(
        cancelled=Count("pk", filter=Q(pk__in=cancelled_ids)),
        active=Count("pk", filter=Q(status__in=["pending", "confirmed"])),
        active_paid=Count(
            "pk", filter=Q(status__in=["pending", "confirmed"], payment_status="paid")
        ),
    )
    return CancellationSummary(
        event_id=event.pk,
        status=event.status,
        refunded=refunds["succeeded"],
        cancelled=counts["cancelled"] - refunds["bookings"],
        refunds_pending=refunds["owed"]
        - refunds["succeeded"]
        - refunds["gave_up"]
        + counts["active_paid"],
        refund_failed=refunds["gave_up"],
        to_settle=counts["active"],
    )
