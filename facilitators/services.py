"""What facilitators do with their events, built on the events and bookings services."""

from dataclasses import asdict, dataclass

from django.db.models import Count, Q

from ahoum.attempts import AttemptStatus
from bookings.models import Booking, BookingAudit, Refund
from events import services as event_services
from events.models import Event


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
    """Cancel the event; the worker cancels its bookings and refunds every paid one.

    Answers at once whatever the number of bookings: the summary says what is done and what
    the worker has yet to do. Safe to call again: nothing is settled or refunded twice.
    """
    event, _ = event_services.cancel_event(event_id=event.pk, by=by, reason=reason)
    return summarize_cancellation(event)


def summarize_cancellation(event: Event) -> CancellationSummary:
    """Count what the event's cancellation did so far, in three queries."""
    cancelled_ids = BookingAudit.objects.filter(
        booking__event=event, change="booking.event_cancelled"
    ).values("booking_id")
    # The refunds of the bookings' own money (a second payment's refund is not counted here).
    refunds = (
        Refund.objects.filter(booking_id__in=cancelled_ids)
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
