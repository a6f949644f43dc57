"""The catalogue cache (events/cache.py): served from memory, never staler than the database."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from bookings import services as booking_services
from bookings.models import Booking
from bookings.services import event_cancellation
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
    api_client.get("/events", {"type": "Yoga"})  # a list page is stored at its second request

    with CaptureQueriesContext(connection) as queries:
        again = api_client.get("/events", {"type": "Yoga"})

    assert len(queries) == 0
    assert again.json() == first.json()
    assert api_client.get("/events", {"type": "Dance"}).json()["count"] == 0  # its own key


def test_booking_and_cancelling_show_once_committed(
    api_client, user, django_capture_on_commit_callbacks
):
    # A test is one transaction that never commits: the commit's callbacks are run by hand.
    event = EventFactory(capacity=5)
    assert seats_left(api_client, event) == 5

    with django_capture_on_commit_callbacks(execute=True):
        booking = booking_services.book_event(user=user, event_id=event.pk)
    assert seats_left(api_client, event) == 4

    with django_capture_on_commit_callbacks(execute=True):
        booking_services.cancel_booking(booking=booking, by=user)
    assert seats_left(api_client, event) == 5


def test_a_lapsing_hold_frees_its_seat_on_a_cached_page_when_it_lapses(api_client, user, settings):
    settings.CATALOGUE_CACHE_SECONDS = 3600  # longer than the hold: the lapse must end the page
    event = EventFactory(capacity=5)
    booking_services.book_event(user=user, event_id=event.pk)
    assert seats_left(api_client, event) == 4
    assert seats_left(api_client, event) == 4  # the list page is stored at its second request

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        assert seats_left(api_client, event) == 5  # no write happened: the page timed out


def test_an_event_leaves_the_default_list_when_it_starts(api_client, settings):
    settings.CATALOGUE_CACHE_SECONDS = 3600
    soon = EventFactory(starts_at=timezone.now() + timedelta(minutes=5))
    later = EventFactory(starts_at=timezone.now() + timedelta(days=5))
    for _ in range(2):  # the list page is stored at its second request
        assert [row["id"] for row in api_client.get("/events").json()["results"]] == [
            soon.pk,
            later.pk,
        ]

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert [row["id"] for row in api_client.get("/events").json()["results"]] == [later.pk]


def test_event_changes_and_a_renamed_facilitator_show_once_committed(
    api_client, facilitator, django_capture_on_commit_callbacks
):
    event = EventFactory(facilitator=facilitator)
    assert api_client.get(f"/events/{event.pk}").json()["title"] == event.title

    with django_capture_on_commit_callbacks(execute=True):
        event.title = "Sunrise flow"
        event.save()
    assert api_client.get(f"/events/{event.pk}").json()["title"] == "Sunrise flow"

    with django_capture_on_commit_callbacks(execute=True):
        event.facilitator.name = "Asha Rao"
        event.facilitator.save()
    assert api_client.get("/events").json()["results"][0]["facilitator_name"] == "Asha Rao"

    with django_capture_on_commit_callbacks(execute=True):
        event.delete()
    assert api_client.get(f"/events/{event.pk}").status_code == 404


def test_changes_retire_the_pages_when_their_transaction_commits(
    api_client, django_capture_on_commit_callbacks, staff
):
    # The whole test is one transaction (pytest-django), committed by hand at the end.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event, other = EventFactory(capacity=5), EventFactory()
        assert seats_left(api_client, event) == 5
        assert seats_left(api_client, event) == 5  # both pages cached (a list at its second)
        event_cancellation.cancel_event(event=other, by=staff, reason="")
        booking_services.book_event(user=UserFactory(), event_id=event.pk)
        # Not committed yet: other readers must not see it, the cached page stands.
        assert seats_left(api_client, event) == 5

    for callback in callbacks:  # the commit
        callback()
    assert seats_left(api_client, event) == 4


def test_an_unreachable_cache_serves_from_the_database(api_client, user, monkeypatch):
    event = EventFactory(capacity=5)

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(catalogue_cache.cache, "get", down)
    monkeypatch.setattr(catalogue_cache.cache, "set", down)

    assert seats_left(api_client, event) == 5
    booking_services.book_event(user=user, event_id=event.pk)
    assert seats_left(api_client, event) == 4


@pytest.mark.django_db(transaction=True)  # a real commit runs the real callbacks
def test_a_failed_bump_never_fails_the_committed_change(caplog, monkeypatch):
    event = EventFactory(capacity=5)
    user = UserFactory()

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(catalogue_cache.cache, "incr", down)
    monkeypatch.setattr(catalogue_cache.cache, "set", down)

    booking = booking_services.book_event(user=user, event_id=event.pk)

    assert Booking.objects.filter(pk=booking.pk, user=user).exists()
    assert "cache down" in caplog.text  # Django logs a robust callback's error


def test_off_when_the_setting_is_zero(api_client, settings):
    settings.CATALOGUE_CACHE_SECONDS = 0
    EventFactory()
    api_client.get("/events")

    with CaptureQueriesContext(connection) as queries:
        api_client.get("/events")

    assert len(queries) > 0
