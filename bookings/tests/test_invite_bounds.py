"""The invite and the emails of any stored event are built, however odd its row.

Validation (events/models.py) keeps new events inside sane dates, real zones and a bounded
length; rows from before it, or written around it, must still give an invite and an email
instead of a 500 and an email retried until it gives up.
"""

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone
from icalendar import Calendar

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import emails
from bookings.models import Booking, BookingEmail
from conftest import client_for, run_tasks
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

NEXT_YEAR = timezone.now().year + 1

ODD_ROWS = {
    # The reproduction: in Berlin, its end is in the year 10000.
    "far future in Berlin": (
        "Europe/Berlin",
        datetime(9999, 12, 31, 22),
        datetime(9999, 12, 31, 23),
    ),
    # Both times convert, but a year of VTIMEZONE after the end does not exist.
    "the last year": ("Europe/Berlin", datetime(9999, 6, 1, 18), datetime(9999, 6, 1, 20)),
    # West of Greenwich, the first hour of year 1 is before year 1.
    "year one in New York": ("America/New_York", datetime(1, 1, 1, 1), datetime(1, 1, 1, 2)),
    # Seven thousand years of daylight-saving rules would be a 230 KB invite, built in seconds.
    "seven thousand years long": (
        "Europe/Berlin",
        datetime(NEXT_YEAR, 3, 1, 9),
        datetime(9000, 3, 1, 9),
    ),
    "a zone that is no place": (
        "Mars/Olympus",
        datetime(NEXT_YEAR, 3, 1, 9),
        datetime(NEXT_YEAR, 3, 1, 11),
    ),
    "a path for a zone": (
        "../../etc/passwd",
        datetime(NEXT_YEAR, 3, 1, 9),
        datetime(NEXT_YEAR, 3, 1, 11),
    ),
    "a folder for a zone": ("Europe", datetime(NEXT_YEAR, 3, 1, 9), datetime(NEXT_YEAR, 3, 1, 11)),
    "no zone": ("", datetime(NEXT_YEAR, 3, 1, 9), datetime(NEXT_YEAR, 3, 1, 11)),
}


@pytest.fixture
def attendee():
    return UserFactory(email="alice@example.com")


def booked_then_stored_as(attendee, zone: str, starts_at: datetime, ends_at: datetime) -> Booking:
    """A free booking of a normal event whose row is then rewritten directly, past validation."""
    event = EventFactory(price=Decimal("0"), title="Long Retreat")
    response = client_for(attendee).post("/bookings/", {"event_id": event.pk}, format="json")
    assert response.status_code == 201, response.json()
    Event.objects.filter(pk=event.pk).update(
        timezone=zone, starts_at=starts_at.replace(tzinfo=UTC), ends_at=ends_at.replace(tzinfo=UTC)
    )
    return Booking.objects.select_related("event").get(pk=response.json()["id"])


def the_event_in(content: bytes):
    calendar = Calendar.from_ical(content)
    (vevent,) = calendar.walk("VEVENT")
    return calendar, vevent


@pytest.mark.parametrize("row", ODD_ROWS.values(), ids=ODD_ROWS.keys())
def test_the_calendar_endpoint_serves_an_invite_for_any_stored_event(attendee, row):
    zone, starts_at, ends_at = row
    booking = booked_then_stored_as(attendee, zone, starts_at, ends_at)

    began = time.monotonic()
    response = client_for(attendee).get(f"/bookings/{booking.pk}/calendar.ics")
    took = time.monotonic() - began

    assert response.status_code == 200
    assert len(response.content) < 10_000  # a VTIMEZONE around the event, never its centuries
    assert took < 1
    calendar, vevent = the_event_in(response.content)
    # Written in UTC when the event's own zone cannot hold it: still the stored moments.
    assert vevent["DTSTART"].dt == starts_at.replace(tzinfo=UTC)
    assert vevent["DTEND"].dt == ends_at.replace(tzinfo=UTC)
    assert calendar.walk("VTIMEZONE") == []


@pytest.mark.parametrize("row", ODD_ROWS.values(), ids=ODD_ROWS.keys())
def test_the_confirmation_of_any_stored_event_is_sent_with_its_invite(attendee, row):
    zone, starts_at, ends_at = row
    booking = booked_then_stored_as(attendee, zone, starts_at, ends_at)

    run_tasks()

    statuses = set(BookingEmail.objects.filter(booking=booking).values_list("status", flat=True))
    assert statuses == {AttemptStatus.SUCCEEDED}  # not failed, retried until it gives up
    (confirmation,) = [message for message in mail.outbox if message.to == ["alice@example.com"]]
    (part,) = confirmation.attachments
    _, vevent = the_event_in(part.get_payload(decode=True))
    assert vevent["DTSTART"].dt == starts_at.replace(tzinfo=UTC)
    # "When:  Friday 31 December 9999, 22:00 to 23:00 UTC"
    shown = emails.when(booking.event)
    assert shown.endswith(" UTC")
    assert f"{starts_at.year:04}, {starts_at:%H:%M} to " in shown
    assert f"When:  {shown}" in confirmation.body
