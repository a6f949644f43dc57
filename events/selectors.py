"""Reading the catalogue: a page's events, then what the page shows of each.

A list page is an index range of events (events/models.py) read up to its last row; its seats
left and facilitator names are then read for those rows only, in two queries, so a deep page
or a large catalogue costs what the page holds (bench/README.md, "Scale").
"""

from django.contrib.auth import get_user_model
from django.utils import timezone

from events.models import Event, EventQuerySet


def catalogue() -> EventQuerySet:
    """The events a list page is read from (its filters and order come from events/filters.py)."""
    return Event.objects.all()


def with_page_details(events: list[Event], now=None) -> list[Event]:
    """Set `seats_left` and `facilitator_name` on a page's events (two queries); the events.

    `seats_left` is `Event.objects.with_seats_left()`'s, for these rows only.
    """
    if not events:
        return events
    now = now or timezone.now()
    seats_left = dict(
        Event.objects.filter(pk__in=[event.pk for event in events])
        .with_seats_left(now)
        .values_list("pk", "seats_left")
    )
    names = dict(
        get_user_model()
        .objects.filter(pk__in={event.facilitator_id for event in events})
        .values_list("pk", "name")
    )
    for event in events:
        event.seats_left = seats_left[event.pk]
        event.facilitator_name = names.get(event.facilitator_id, "")
    return events
