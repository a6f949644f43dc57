"""The catalogue cache (events/cache.py): served from memory, never staler than the database."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from bookings import services as booking_services
from events import cache as catalogue_cache
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def seats_left(api_client, event) -> int:
    listed = api_client.get("/events").json()["results"]
    shown = api_client.get(f"/events/{event.pk}").json()
    assert [row["seats_left"] for row in listed if row["id"] == event.pk] == [shown["seats_left"]]
    return shown["seats_left"]


def test_a_page_seen_before_is_served_without_touching_the_database(api_client):
    EventFactory.create_batch(3)
    first = api_client.get("/events", {"type": "Yoga"})

    with CaptureQueriesContext(connection) as queries:
        again = api_client.get("/events", {"type": "Yoga"})

    assert len(queries) == 0
    assert again.json() == first.json()
    assert api_client.get("/events", {"type": "Dance"}).json()["count"] == 0  # its own key


def test_booking_and_cancelling_show_at_once(api_client, user):
    event = EventFactory(capacity=5)
    assert seats_left(api_client, event) == 5

    booking = booking_services.book_event(user=user, event_id=event.pk)
    assert seats_left(api_client, event) == 4

    booking_services.cancel_booking(booking=booking, by=user)
    assert seats_left(api_client, event) == 5


def test_a_lapsing_hold_frees_its_seat_on_a_cached_page_when_it_lapses(
    api_client, user, settings
):
    settings.CATALOGUE_CACHE_SECONDS = 3600  # longer than the hold: the lapse must end the page
    event = EventFactory(capacity=5)
    booking_services.book_event(user=user, event_id=event.pk)
    assert seats_left(api_client, event) == 4

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        assert seats_left(api_client, event) == 5  # no write happened: the page timed out


def test_an_event_leaves_the_default_list_when_it_starts(api_client, settings):
    settings.CATALOGUE_CACHE_SECONDS = 3600
    soon = EventFactory(starts_at=timezone.now() + timedelta(minutes=5))
    later = EventFactory(starts_at=timezone.now() + timedelta(days=5))
    assert [row["id"] for row in api_client.get("/events").json()["results"]] == [
        soon.pk,
        later.pk,
    ]

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert [row["id"] for row in api_client.get("/events").json()["results"]] == [later.pk]


def test_event_changes_and_a_renamed_facilitator_show_at_once(api_client, facilitator):
    event = EventFactory(facilitator=facilitator)
    assert api_client.get(f"/events/{event.pk}").json()["title"] == event.title

    event.title = "Sunrise flow"
    event.save()
    assert api_client.get(f"/events/{event.pk}").json()["title"] == "Sunrise flow"

    event.facilitator.name = "Asha Rao"
    event.facilitator.save()
    assert api_client.get("/events").json()["results"][0]["facilitator_name"] == "Asha Rao"

    event.delete()
    assert api_client.get(f"/events/{event.pk}").status_code == 404


def test_a_change_retires_pages_again_when_its_transaction_commits(
    django_capture_on_commit_callbacks, user
):
    event = EventFactory()
    version = cache.get(catalogue_cache.VERSION_KEY) or 0

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        booking_services.book_event(user=UserFactory(), event_id=event.pk)

    # Once inside the transaction and once after it: a page another reader built from the
    # rows before the commit is not served after it.
    assert catalogue_cache._bump in callbacks
    assert cache.get(catalogue_cache.VERSION_KEY) >= version + 2


def test_off_when_the_setting_is_zero(api_client, settings):
    settings.CATALOGUE_CACHE_SECONDS = 0
    EventFactory()
    api_client.get("/events")

    with CaptureQueriesContext(connection) as queries:
        api_client.get("/events")

    assert len(queries) > 0
