"""What facilitators do with their events, built on the events, bookings and payments services."""

from dataclasses import asdict, dataclass

from bookings import payments
from bookings.models import BookingAudit, Refund, RefundStatus
from events import services as event_services
from events.models import Event


@dataclass(frozen=True)
class CancellationSummary:
    event_id: int
    status: str
    refunded: int  # paid bookings whose money went back
    cancelled: int  # unpaid and free bookings cancelled
    refund_failed: int  # paid bookings whose refund has not gone through yet (being retried)

    def as_dict(self) -> dict:
        return asdict(self)


def cancel_event(*, event: Event, by, reason: str = "") -> CancellationSummary:
    """Cancel the event, cancel its bookings and refund every paid one through Stripe.

    Safe to call again: the event and its bookings are settled once, and a second call
    answers with the same summary (refunds still owed are retried by their own tasks).
    """
    event, newly_cancelled = event_services.cancel_event(event_id=event.pk, by=by, reason=reason)
    if newly_cancelled:
        # Outside the event's lock: one Stripe call per paid booking.
        owed = Refund.objects.filter(booking__event=event, status=RefundStatus.PENDING, attempts=0)
        for refund in owed:
            payments.attempt_refund(refund_id=refund.pk, after_attempts=0)
    return summarize_cancellation(event)


def summarize_cancellation(event: Event) -> CancellationSummary:
    """Count what the event's cancellation did to the bookings it found active."""
    cancelled_ids = list(
        BookingAudit.objects.filter(
            booking__event=event, change="booking.event_cancelled"
        ).values_list("booking_id", flat=True)
    )
    refunds = dict(
        Refund.objects.filter(booking_id__in=cancelled_ids).values_list("booking_id", "status")
    )
    refunded = sum(status == RefundStatus.SUCCEEDED for status in refunds.values())
    return CancellationSummary(
        event_id=event.pk,
        status=event.status,
        refunded=refunded,
        cancelled=len(cancelled_ids) - len(refunds),
        refund_failed=len(refunds) - refunded,
    )
