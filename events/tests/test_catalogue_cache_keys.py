"""Nobody can fill the cache through the catalogue (events/cache.py, events/filters.py).

A page is keyed by what it shows: the recognised parameters in one spelling per meaning, or
the event's id. Unknown parameters are a 400 that stores nothing, and the bytes stored per
window are capped for the endless values real filters take.
"""

import logging
import os
import pickle
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
import time_machine
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events import cache as catalogue_cache
from events.filters import catalogue_query
from events.models import EventStatus
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored_pages(monkeypatch) -> list[str]:
    """The keys of the pages the catalogue cache stores from now on."""
    keys = []
    real_set = catalogue_cache.cache.set

    def recording_set(key, *args, **kwargs):
        if key != catalogue_cache.VERSION_KEY:  # set again when a bump finds it evicted
            keys.append(key)
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(catalogue_cache.cache, "set", recording_set)
    return keys


@pytest.fixture
def catalogue():
    """Events that tell the filters apart: two types, ratings, a past and a cancelled one."""
    now = timezone.now()
    return [
        EventFactory(type="Yoga", rating="4.5", price="25.00"),
        EventFactory(type="yoga", rating="4.8", price="80.00", capacity=1),
        EventFactory(type="Meditation", rating="4.0", price="0.00"),
        EventFactory(type="Dance", rating=None, price="10.00"),
        EventFactory(type="Yoga", starts_at=now - timedelta(days=2)),
        EventFactory(type="Yoga", status=EventStatus.CANCELLED),
    ]


# --- unknown parameters --------------------------------------------------------------------


def test_unknown_parameters_are_a_400_naming_them(api_client, catalogue):
    for path in ["/events", "/events/", "/events/filter"]:
        response = api_client.get(path, {"type": "Yoga", "junk": "1", "types": "Dance"})

        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid"
        assert set(body["fields"]) == {"junk", "types"}
        assert "The catalogue takes: available, facilitator" in body["fields"]["junk"][0]

    # What the Postman collection, the e2e story and the README send is all known.
    facilitator = catalogue[0].facilitator_id
    for query in [
        "",
        "type=Yoga&rating=4.5",
        f"type=Yoga&rating=4.5&facilitator={facilitator}",
        f"type=yoga,meditation&facilitator={facilitator}&price_max=100&available=true"
        "&ordering=-rating",
        "type=yoga&price_max=50&available=true",
        "starts_after=2026-01-01T00:00:00Z&starts_before=2099-01-01T00:00:00%2B01:00",
        "price_min=10&search=calm&include_past=true&include_cancelled=true",
        "page=1&page_size=5&format=json",
    ]:
        response = api_client.get(f"/events?{query}")
        assert response.status_code == 200, (query, response.json())


def test_junk_parameters_store_no_page(api_client, stored_pages, catalogue):
    # The reproduction: 300 anonymous requests with ?junk=N were 300 pages (303 MB of Redis).
    for n in range(300):
        assert api_client.get("/events", {"junk": n}).status_code == 400

    assert stored_pages == []


# --- one spelling per meaning --------------------------------------------------------------

SAME_PAGE = {
    "type and rating": [
        "type=Yoga&rating=4.5",
        "rating=4.5&type=Yoga",
        "type=yoga&rating=4.50",
        "type=YOGA&rating=04.5&page=1",
        "type=Yoga,yoga&rating=%204.5%20&page_size=20",
        "type=Yoga&type=yoga&rating=4.5&include_past=false&include_cancelled=False",
        "type=%20Yoga%20,&rating=4.5&search=",
        "rating=5&rating=4.5&type=Yoga",  # a repeated parameter: the last one counts
    ],
    "several types": [
        "type=Yoga,Meditation",
        "type=meditation&type=YOGA",
        "type=Meditation,%20yoga,yoga",
    ],
    "an instant at any offset": [
        "starts_after=2026-01-01T00:00:00Z",
        "starts_after=2026-01-01T01:00:00%2B01:00",
        "starts_after=2025-12-31T19:00:00-05:00",
        "starts_after=2026-01-01T00:00:00.000000%2B00:00",
    ],
    "a flag in any case": ["available=true", "available=TRUE", "available=1", "available=Yes"],
    "a page size past the cap": ["page_size=100", "page_size=500", "page_size=0100"],
    "what the filters read as nothing": [
        "",
        "type=Yoga&type=",  # django-filter reads the last value: blank, so no type filter
        "type=%20",
        "search=",
        "search=%20",
        "page=1&page_size=20",
        "include_past=false&include_cancelled=0",
    ],
    "the last of a repeated parameter": [
        "include_past=true",
        "include_past=false&include_past=true",
        "include_past=no&include_past=TRUE",
    ],
}


@pytest.mark.parametrize("spellings", SAME_PAGE.values(), ids=SAME_PAGE.keys())
def test_every_spelling_of_one_query_is_one_cached_page(
    api_client, stored_pages, catalogue, spellings
):
    first = api_client.get(f"/events?{spellings[0]}")
    assert first.status_code == 200
    assert stored_pages == []  # a list page is stored at its second request
    api_client.get(f"/events?{spellings[0]}")
    assert len(stored_pages) == 1

    for query in spellings[1:]:
        with CaptureQueriesContext(connection) as queries:
            again = api_client.get(f"/events?{query}")
        assert again.status_code == 200, query
        assert len(queries) == 0, query  # served from the page the first spelling stored
        assert again.json()["results"] == first.json()["results"], query
    assert len(stored_pages) == 1


# Each line's queries are told apart: they differ in what they mean (or in whether they are a
# 400), however alike they look.
DIFFERENT_PAGES = [
    "",
    "type=Yoga",
    "type=,",
    "type=Dance",
    "type=Yoga,Dance",
    "type=%C3%84",
    "type=%C3%A4",  # non-ASCII case is the database's to fold, not the key's
    "rating=4",
    "rating=4.5",
    "rating=4.5&rating=",  # a typed parameter without a value: a 400
    "rating=",
    "rating=4.5e0",
    "rating=-0",
    "available=true",
    "available=false",
    "available=",
    "available=%20",
    "include_past=true",
    "include_cancelled=true",
    "ordering=starts_at",  # not the default order: that one also orders by id
    "ordering=-starts_at",
    "ordering=rating,-price",
    "ordering=-price,rating",
    "ordering=Rating",
    "page=",  # a blank page: a 400 (ahoum/pagination.py), not page 1
    "page=2",
    "page=last",
    "page=1.0",
    "page=0",
    "page_size=5",
    "page_size=0",
    "page_size=",
    "search=calm",
    "search=%20Calm%20",
    "search=Session%201",
    "starts_after=2026-01-01T00:00:00",  # no offset: read in the server's time zone
    "starts_after=2026-01-01T00:00:00Z",
    "starts_before=2026-01-01T00:00:00Z",
    "starts_after=9999-12-31T23:00:00-05:00",
    "price_min=10",
    "price_max=10",
    "facilitator=1.5",
    "format=json",
]


def answer(api_client, query: str):
    response = api_client.get(f"/events?{query}")
    body = response.json()
    if response.status_code != 200:
        return response.status_code, body["code"]
    return 200, body["count"], tuple(row["id"] for row in body["results"])


def test_one_key_per_meaning_and_never_two_answers_for_one_key(api_client, settings, catalogue):
    """The canonical query merges what the filters and the paginator read alike, and only that."""
    for spellings in SAME_PAGE.values():
        assert len({catalogue_query(QueryDict(query)) for query in spellings}) == 1, spellings

    settings.CATALOGUE_CACHE_SECONDS = 0  # every answer from the database
    queries = DIFFERENT_PAGES + [query for group in SAME_PAGE.values() for query in group]
    by_key = {}
    for query in queries:
        key = catalogue_query(QueryDict(query))
        by_key.setdefault(key, []).append((query, answer(api_client, query)))

    for spelled in by_key.values():
        answers = {result for _, result in spelled}
        assert len(answers) == 1, spelled
    different = [catalogue_query(QueryDict(query)) for query in DIFFERENT_PAGES]
    assert len(set(different)) == len(different)


def test_an_event_page_is_keyed_by_its_id_alone(api_client, stored_pages, catalogue):
    event = catalogue[0]
    first = api_client.get(f"/events/{event.pk}")

    for path in [f"/events/{event.pk:04}", f"/events/{event.pk}?junk=1", f"/events/{event.pk}?a=b"]:
        with CaptureQueriesContext(connection) as queries:
            again = api_client.get(path)
        assert again.status_code == 200, path
        assert again.json() == first.json()
        assert len(queries) == 0, path
    assert len(stored_pages) == 1


# --- a cap on what is stored -----------------------------------------------------------------


def pickled_size(data) -> int:
    return len(pickle.dumps(data, pickle.HIGHEST_PROTOCOL))  # as Django's backends store it


def test_the_bytes_stored_per_window_are_capped(
    api_client, stored_pages, catalogue, monkeypatch, settings, caplog
):
    # Real filters take endless values: each instant is a page of its own.
    settings.CATALOGUE_CACHE_SECONDS = 60
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(2):  # a list page is stored at its second request
            api_client.get("/events", {"starts_after": "2026-01-01T00:00:00Z"})
        (first,) = stored_pages
        # Every page here is as large (its key too).
        size = len(first) + pickled_size(catalogue_cache.cache.get(first))
        monkeypatch.setattr(catalogue_cache, "PAGE_BYTES_PER_WINDOW", 3 * size + size // 2)

        with caplog.at_level(logging.WARNING, logger="events.cache"):
            for n in range(1, 20):
                moment = f"2026-01-01T00:00:00.{n:06}Z"
                for _ in range(2):
                    response = api_client.get("/events", {"starts_after": moment})
                    assert response.status_code == 200
                    assert response.json()["count"] == 4  # still right, from the database

        assert len(stored_pages) == 3  # 3.5 pages' worth of budget
        warnings = [r for r in caplog.records if "the most it keeps" in r.getMessage()]
        assert len(warnings) == 1

        # The pages already kept are still served.
        with CaptureQueriesContext(connection) as queries:
            api_client.get("/events", {"starts_after": "2026-01-01T00:00:00Z"})
        assert len(queries) == 0

        # The next window stores pages again.
        traveller.shift(timedelta(seconds=120))
        for _ in range(2):
            api_client.get("/events", {"starts_after": "2026-01-02T00:00:00Z"})
        assert len(stored_pages) == 4


# --- against a real Redis --------------------------------------------------------------------


@pytest.mark.redis
def test_junk_and_respellings_leave_redis_as_it_was(api_client, settings, catalogue):
    import redis

    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["TEST_REDIS_URL"],
            "KEY_PREFIX": prefix,
        }
    }
    client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])

    PARTS = (b":version", b":stored:", b":seen:")  # not pages

    def pages() -> list[bytes]:
        return [
            key
            for key in client.scan_iter(match=f"{prefix}:*", count=1000)
            if b":catalogue:" in key and not any(part in key for part in PARTS)
        ]

    try:
        for _ in range(2):  # a list page is stored at its second request
            assert api_client.get("/events", {"type": "Yoga"}).status_code == 200
        assert len(pages()) == 1
        for n in range(300):
            assert api_client.get("/events", {"type": "Yoga", "junk": n}).status_code == 400
        for spelling in SAME_PAGE["type and rating"]:
            assert api_client.get(f"/events?{spelling}").status_code == 200
        for n in range(50):
            padded = quote(" " * (n % 7) + "yoga" + " " * (n // 7))
            assert api_client.get(f"/events?type={padded}").status_code == 200

        assert len(pages()) == 2  # type=Yoga, and type=Yoga&rating=4.5
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
