"""Every change of a booking's state, one module per concern (README, "Architecture"):

- `booking`: book, cancel (a booking or one seat), renew and expire seats; the seat counter
  and the audit trail every other change goes through (`transition`).
- `payments`: Stripe Checkout, Stripe's webhooks, and a payment settling a booking.
- `refunds`: money owed back, moved through Stripe by the worker.
- `event_cancellation`: cancelling an event, its bookings and their refunds, end to end.

The names below are the operations views, tasks, the admin and the CRM call.
"""

from bookings.services.booking import (
    book_event,
    cancel_attendee,
    cancel_booking,
    expire_hold,
    expire_stale_holds,
    release_hold,
    renew_hold,
)
from bookings.services.event_cancellation import (
    cancel_event,
    settle_cancelled_event,
    summarize_cancellation,
)
from bookings.services.payments import (
    attach_checkout,
    book_with_checkout,
    checkout,
    flag_payment_issue,
    mark_paid,
    record_checkout_payment,
)
from bookings.services.refunds import mark_refunded, refund_failed_in_stripe, refund_succeeded

__all__ = [
    "attach_checkout",
    "book_event",
    "book_with_checkout",
    "cancel_attendee",
    "cancel_booking",
    "cancel_event",
    "checkout",
    "expire_hold",
    "expire_stale_holds",
    "flag_payment_issue",
    "mark_paid",
    "mark_refunded",
    "record_checkout_payment",
    "refund_failed_in_stripe",
    "refund_succeeded",
    "release_hold",
    "renew_hold",
    "settle_cancelled_event",
    "summarize_cancellation",
]
