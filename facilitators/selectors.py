"""What a facilitator reads about their events: registrations, their summary, own events.

The API (`facilitators/views.py`) and the back office read through these, so both show the
same numbers.
"""

from django.db.models import Count, Q

from bookings.models import Booking, BookingQuerySet
from events.models import Event, EventQuerySet


def registrations(event: Event) -> BookingQuerySet:
    """The event's bookings with their people, in booking order."""
    return Booking.objects.filter(event=event).select_related("user").order_by("created_at", "id")


def registration_summary(event: Event) -> dict:
    """Seats, counts by status and the money kept, for the registrations page (two queries)."""
    event = Event.objects.with_seats_left().get(pk=event.pk)
    return {
        "event_id": event.pk,
        "title": event.title,
        "capacity": event.capacity,
        "seats_left": event.seats_left,
        "currency": event.currency,
        **Booking.objects.filter(event=event).registration_summary(),
    }


def own_events(user) -> EventQuerySet:
    """The user's events (staff: everyone's) with booking counts and seats left, newest first."""
    events = Event.objects.for_catalogue().annotate(
        bookings_confirmed=Count("bookings", filter=Q(bookings__status="confirmed")),
        bookings_pending=Count("bookings", filter=Q(bookings__status="pending")),
    )
    if not user.is_staff:
        events = events.filter(facilitator=user)
    return events.order_by("-starts_at", "-id")
