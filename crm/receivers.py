"""Signal receivers: booking changes become CRM deliveries."""

from crm import services


def queue_booking_notification(sender, booking, audit, **kwargs) -> None:
    """Connected to `bookings.signals.booking_changed`, sent inside the change's transaction.

    Only rows are written here (a delivery and its task), no network call: they commit or
    roll back with the booking change, and the worker sends after commit.
    """
    services.queue_booking_notification(booking=booking, audit=audit)
