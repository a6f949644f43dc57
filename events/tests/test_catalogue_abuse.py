"""What one client can do to the catalogue for everyone (issue 18 review, findings 4 and 5)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from events import cache as catalogue_cache
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(monkeypatch) -> list[str]:
    """The keys of the pages the catalogue cache stores from now on."""
    keys = []
    real_set = catalogue_cache.cache.set

    def recording_set(key, *args, **kwargs):
        if key != catalogue_cache.VERSION_KEY:
            keys.append(key)
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(catalogue_cache.cache, "set", recording_set)
    return keys


@pytest.mark.parametrize("path", ["/events", "/events/filter"])
@pytest.mark.parametrize("query", ["type=a%00b&type=Yoga", "type=Yoga&type=a%00b"])
def test_every_value_of_a_repeated_type_parameter_is_validated(api_client, path, query):
    """filter_type() reads every value (getlist), the form checked only the last: on
    PostgreSQL `?type=a%00b&type=Yoga` was a 500 (DataError: NUL in a text parameter)."""
    EventFactory(type="Yoga")

    response = api_client.get(f"{path}?{query}")

    assert response.status_code == 400
    assert response.json()["fields"] == {"type": ["Null characters are not allowed."]}


def test_one_anonymous_client_cannot_switch_the_catalogue_cache_off_for_everyone(
    api_client, settings, stored
):
    """Descriptions at their bound (5000 characters of 4 bytes) make a page of 20 events
    about 370 KB; 200 requests with new `starts_before` instants used the whole 64 MB budget
    of the window, after which no new page was cached for anyone until the window ended.
    A list page is now stored at its second request only: one-off queries store no page."""
    settings.CATALOGUE_CACHE_SECONDS = 60
    now = timezone.now()
    for day in range(20):
        EventFactory(description="\U0001f600" * 5000, starts_at=now + timedelta(days=day + 1))

    for n in range(200):
        moment = f"2031-01-01T00:00:00.{n:06}Z"
        response = api_client.get("/events", {"starts_before": moment}, REMOTE_ADDR="198.51.100.7")
        assert response.status_code == 200
    assert stored == [], "one-off queries stored pages"

    visitor = Client(REMOTE_ADDR="203.0.113.50")
    for _ in range(2):
        assert visitor.get("/events", {"type": "Yoga"}).status_code == 200
    assert len(stored) == 1, "another visitor's page was not cached"


def test_a_port_in_the_host_header_stores_no_page_and_gets_no_one_elses_links(api_client, stored):
    """Django accepts a listed host with any port; the `next` link names it, so such a page
    is served from the database, never from (nor into) the cache."""
    EventFactory.create_batch(3)
    for port in range(1000, 1010):
        for _ in range(2):
            response = api_client.get("/events", {"page_size": 1}, HTTP_HOST=f"testserver:{port}")
            assert response.json()["next"].startswith(f"http://testserver:{port}/events?")
    assert stored == []

    for _ in range(3):
        response = api_client.get("/events", {"page_size": 1})
        assert response.json()["next"].startswith("http://testserver/events?")
    assert len(stored) == 1
