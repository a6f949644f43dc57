"""dj-stripe signal receivers: verified Stripe events become booking changes.

dj-stripe calls these inside the transaction that stores the event, so the receipt written
here (and its task) exists exactly when the event was recorded; the worker applies it after
commit, outside dj-stripe's transaction (our services open their own).
"""

from djstripe.event_handlers import djstripe_receiver

from bookings.services import payments


@djstripe_receiver(list(payments.EVENT_HANDLERS))
def receive_stripe_event(sender, event, **kwargs) -> None:
    payments.receive_stripe_event(event_id=event.id, event_type=event.type)
