"""What people read about their own bookings (the views read through these)."""

from bookings.models import Booking, BookingQuerySet


def bookings_of(user) -> BookingQuerySet:
    """The user's bookings with their events and refunds, newest first."""
    return Booking.objects.filter(user=user).for_listing()
