"""dj-stripe signal receivers: verified Stripe events become booking changes.

dj-stripe calls these inside the transaction that stores the event, so the task enqueued
here exists exactly when the event was recorded; the worker applies it after commit, outside
dj-stripe's transaction (our services open their own durable ones).
"""

from djstripe.event_handlers import djstripe_receiver

from bookings import tasks
from bookings.payments import EVENT_HANDLERS


@djstripe_receiver(list(EVENT_HANDLERS))
def enqueue_stripe_event(sender, event, **kwargs) -> None:
    tasks.apply_stripe_event.enqueue(event.id)
