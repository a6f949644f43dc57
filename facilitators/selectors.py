"""What a facilitator reads about their events: registrations, their summary, own events.

The API (`facilitators/views.py`), the back office and its CSV export read through these, so
all of them show the same numbers.
"""

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from bookings.models import Attendee, Booking, BookingQuerySet
from events.models import Event, EventQuerySet


def registrations(event: Event) -> BookingQuerySet:
    """The event's bookings with their bookers and attendees, in booking order.

    Attendees come in one prefetch query per page, whatever the page's size.
    """
    return (
        Booking.objects.filter(event=event)
        .select_related("user")
        .prefetch_related("attendees")  # Attendee's ordering: by seat position
        .order_by("created_at", "id")
    )


def registration_summary(event: Event) -> dict:
    """Seats, counts and seats by status and the money kept, for the registrations page
    (two queries)."""
    event = Event.objects.with_seats_left().get(pk=event.pk)
    return {
        "event_id": event.pk,
        "title": event.title,
        "capacity": event.capacity,
        "seats_left": event.seats_left,
        "currency": event.currency,
        **Booking.objects.filter(event=event).registration_summary(),
    }


def attendee_rows(event: Event) -> QuerySet[Attendee]:
    """Every seat of the event's bookings, with its booking and booker: one row per attendee,
    in booking order then seat order (for the registrations export)."""
    return (
        Attendee.objects.filter(booking__event=event)
        .select_related("booking__user")
        .order_by("booking__created_at", "booking_id", "position")
    )


def own_events(user) -> EventQuerySet:
    """The user's events (staff: everyone's) with booking and seat counts and seats left,
    newest first."""
    events = Event.objects.for_catalogue().annotate(
        bookings_confirmed=Count("bookings", filter=Q(bookings__status="confirmed")),
        bookings_pending=Count("bookings", filter=Q(bookings__status="pending")),
        seats_confirmed=Coalesce(Sum("bookings__seats", filter=Q(bookings__status="confirmed")), 0),
        seats_pending=Coalesce(Sum("bookings__seats", filter=Q(bookings__status="pending")), 0),
    )
    if not user.is_staff:
        events = events.filter(facilitator=user)
    return events.order_by("-starts_at", "-id")
