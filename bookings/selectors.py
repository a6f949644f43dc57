"""What people read about their own bookings (the views read through these)."""

from bookings.models import Booking, BookingQuerySet, WaitlistEntry, WaitlistEntryQuerySet


def bookings_of(user) -> BookingQuerySet:
    """The user's bookings with their events and refunds, newest first."""
    return Booking.objects.filter(user=user).for_listing()


def waitlist_of(user) -> WaitlistEntryQuerySet:
    """The user's waitlist entries with their events and places, newest first."""
    return (
        WaitlistEntry.objects.filter(user=user)
        .select_related("event")
        .with_positions()
        .order_by("-created_at", "-id")
    )
