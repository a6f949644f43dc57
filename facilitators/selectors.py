"""What a facilitator reads about their events: registrations, their summary, the waitlist, own
events.

The API (`facilitators/views.py`), the back office and its CSV export read through these, so
all of them show the same numbers.
"""

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from bookings.models import Attendee, Booking, BookingQuerySet, WaitlistEntry, WaitlistStatus
from events.models import Event, EventQuerySet

# Open waitlist entries the registrations page lists; the summary counts all of them.
WAITLIST_SHOWN = 100


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
    """Seats, counts and seats by status, the money kept and the waitlist's counts, for the
    registrations page (three queries)."""
    event = Event.objects.with_seats_left().get(pk=event.pk)
    waitlist = WaitlistEntry.objects.filter(event=event).aggregate(
        waitlist_waiting=Count("pk", filter=Q(status=WaitlistStatus.WAITING)),
        waitlist_offered=Count("pk", filter=Q(status=WaitlistStatus.OFFERED)),
    )
    return {
        "event_id": event.pk,
        "title": event.title,
        "capacity": event.capacity,
        "seats_left": event.seats_left,
        "currency": event.currency,
        **Booking.objects.filter(event=event).registration_summary(),
        **waitlist,
        "seats_waiting": event.seats_waiting,
        "waitlist_open": event.waitlist_open,
    }


def open_waitlist(event: Event, *, limit: int | None = None) -> list[WaitlistEntry]:
    """The event's first `limit` (WAITLIST_SHOWN) open entries, waiting and offered, with their
    users, in the order people joined, each with its `queue_position` among the waiting (None
    for an offer), in one query (`with_positions`).
    """
    return list(
        WaitlistEntry.objects.filter(event=event)
        .open()
        .select_related("user")
        .with_positions()
        .order_by("created_at", "id")[: limit or WAITLIST_SHOWN]
    )


def attendee_rows(event: Event) -> QuerySet[Attendee]:
    """Every seat of the event's bookings, with its booking and booker: one row per attendee,
    in booking order then seat order (for the registrations export)."""
    return (
        Attendee.objects.filter(booking__event=event)
        .select_related("booking__user")
        .order_by("booking__created_at", "booking_id", "position")
    )


def waiting_entries_count() -> Coalesce:
    """A subquery: how many entries wait on the outer event's waitlist.

    A subquery, not a Count over a join: beside the bookings' join it would multiply their
    counts and sums by the number of entries.
    """
    waiting = (
        WaitlistEntry.objects.filter(event=OuterRef("pk"), status=WaitlistStatus.WAITING)
        .order_by()
        .values("event")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(waiting, output_field=IntegerField()), 0)


def own_events(user) -> EventQuerySet:
    """The user's events (staff: everyone's) with booking, seat and waitlist counts and seats
    left, newest first (one query per page)."""
    events = Event.objects.for_catalogue().annotate(
        bookings_confirmed=Count("bookings", filter=Q(bookings__status="confirmed")),
        bookings_pending=Count("bookings", filter=Q(bookings__status="pending")),
        seats_confirmed=Coalesce(Sum("bookings__seats", filter=Q(bookings__status="confirmed")), 0),
        seats_pending=Coalesce(Sum("bookings__seats", filter=Q(bookings__status="pending")), 0),
        waitlist_waiting=waiting_entries_count(),
    )
    if not user.is_staff:
        events = events.filter(facilitator=user)
    return events.order_by("-starts_at", "-id")
