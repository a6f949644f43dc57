"""The registrations of an event as CSV: one row per attendee (seat), streamed.

Rows are read with a chunked iterator (`selectors.attendee_rows`) and written out as they come,
so an event of thousands of seats takes the memory of one chunk, not of the whole file.
"""

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from events.models import Event
from facilitators import selectors

HEADER = [
    "booking_id",
    "booker_name",
    "booker_email",
    "attendee_position",
    "attendee_name",
    "attendee_email",
    "attendee_status",
    "booking_status",
    "payment_status",
    "booking_seats",
]

# Rows read per database round trip (a server-side cursor's fetch on PostgreSQL).
CHUNK_SIZE = 2000

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection):
# https://owasp.org/www-community/attacks/CSV_Injection
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Text that a spreadsheet would read as a formula, with a leading apostrophe (shown as
    text); other values as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def registration_rows(event: Event) -> Iterator[list[Any]]:
    """The header, then one row per attendee of the event's bookings."""
    yield HEADER
    for attendee in selectors.attendee_rows(event).iterator(chunk_size=CHUNK_SIZE):
        booking = attendee.booking
        yield [
            booking.pk,
            booking.user.name,
            booking.user.email,
            attendee.position,
            attendee.name,
            attendee.email,
            attendee.status_in(booking),
            booking.status,
            booking.payment_status,
            booking.seats,
        ]


class LineBuffer:
    """A file-like object whose `write` hands back the line instead of keeping it (Django's
    streaming CSV recipe: https://docs.djangoproject.com/en/5.2/howto/outputting-csv/)."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    """Each row as one CSV line, every cell guarded against formula injection."""
    writer = csv.writer(LineBuffer())
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])


def registrations_filename(event: Event) -> str:
    return f"registrations-event-{event.pk}.csv"
