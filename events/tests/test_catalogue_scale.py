"""A catalogue page costs what it holds: its details are read for its rows, the count is
bounded, every order is an index's, and search is PostgreSQL's full text."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from ahoum.pagination import CappedCountPagination
from bookings import services as booking_services
from bookings.models import Booking
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def page(api_client, query: str = "") -> dict:
    response = api_client.get(f"/events{query}")
    assert response.status_code == 200, response.json()
    return response.json()


def test_a_page_costs_the_same_queries_whatever_the_catalogue_holds(api_client, settings):
    settings.CATALOGUE_CACHE_SECONDS = 0  # the page as the database serves it
    EventFactory.create_batch(3)
    with CaptureQueriesContext(connection) as small:
        page(api_client, "?page_size=100")
    EventFactory.create_batch(60)
    with CaptureQueriesContext(connection) as large:
        body = page(api_client, "?page_size=100")
    assert len(body["results"]) == 63
    # The page, the bounded count, the page's lapsed holds, the page's facilitators.
    assert len(large) == len(small) == 4


def test_seats_left_on_a_page_counts_holds_as_booking_does(api_client):
    held, full, lapsing = (EventFactory(capacity=2, price=Decimal("10")) for _ in range(3))
    booking_services.book_event(user=UserFactory(), event_id=held.pk)
    for _ in range(2):
        booking_services.book_event(user=UserFactory(), event_id=full.pk)
    hold = booking_services.book_event(user=UserFactory(), event_id=lapsing.pk)
    Booking.objects.filter(pk=hold.pk).update(hold_expires_at=timezone.now() - timedelta(1))

    shown = {event["id"]: event["seats_left"] for event in page(api_client)["results"]}

    expected = dict(Event.objects.with_seats_left().values_list("pk", "seats_left"))
    assert shown == expected == {held.pk: 1, full.pk: 0, lapsing.pk: 2}


def test_available_reads_the_counter_and_the_lapsed_holds(api_client):
    open_, full, lapsed_full = (EventFactory(capacity=1, price=Decimal("10")) for _ in range(3))
    booking_services.book_event(user=UserFactory(), event_id=full.pk)
    hold = booking_services.book_event(user=UserFactory(), event_id=lapsed_full.pk)
    Booking.objects.filter(pk=hold.pk).update(hold_expires_at=timezone.now() - timedelta(1))

    def ids(flag: str) -> set[int]:
        return {event["id"] for event in page(api_client, f"?available={flag}")["results"]}

    assert ids("true") == {open_.pk, lapsed_full.pk}
    assert ids("false") == {full.pk}


def test_the_count_looks_a_few_pages_ahead_and_says_whether_it_found_the_end(
    api_client, monkeypatch
):
    monkeypatch.setattr(CappedCountPagination, "LOOKAHEAD_PAGES", 1)
    EventFactory.create_batch(5)

    first = page(api_client, "?page_size=2")  # counts up to page 2: 4 rows
    assert (first["count"], first["count_exact"]) == (4, False)
    assert first["next"] is not None
    second = page(api_client, "?page_size=2&page=2")  # up to page 3: all 5
    assert (second["count"], second["count_exact"]) == (5, True)
    last = page(api_client, "?page_size=2&page=3")
    assert len(last["results"]) == 1 and last["next"] is None
    assert page(api_client, "?page_size=2&page=last")["results"] == last["results"]
    assert api_client.get("/events?page_size=2&page=4").status_code == 404


def test_a_count_never_reads_more_rows_than_its_limit(api_client, monkeypatch):
    monkeypatch.setattr(CappedCountPagination, "LOOKAHEAD_PAGES", 1)
    EventFactory.create_batch(7)
    with CaptureQueriesContext(connection) as captured:
        page(api_client, "?page_size=2")
    (count,) = [q["sql"] for q in captured if q["sql"].startswith("SELECT COUNT(*)")]
    assert "LIMIT 5" in count  # (1 + 1) pages of 2, and one row to tell "more"


@pytest.mark.parametrize("ordering", ["-rating", "price", "starts_at"])
def test_equal_values_are_ordered_by_start_time_then_id_on_every_page(api_client, ordering):
    start = timezone.now() + timedelta(days=3)
    made = [
        EventFactory(
            rating=Decimal("4.0"), price=Decimal("10"), starts_at=start + timedelta(hours=n % 2)
        )
        for n in range(6)
    ]
    expected = [e.pk for e in sorted(made, key=lambda e: (e.starts_at, e.pk))]

    seen = []
    for number in (1, 2, 3):
        body = page(api_client, f"?ordering={ordering}&page_size=2&page={number}")
        seen += [event["id"] for event in body["results"]]

    assert seen == expected


def test_search_is_bounded_in_length(api_client):
    response = api_client.get("/events", {"search": "breath " * 40})
    assert response.status_code == 400
    assert "search" in response.json()["fields"]


# --- PostgreSQL: full-text search and the indexes the pages read --------------------------------


@pytest.fixture
def texts():
    return {
        "breathwork": EventFactory(title="Breathwork at dawn", type="Breathwork", description=""),
        "breathing": EventFactory(
            title="Morning flow", type="Yoga", description="Gentle breathing and stretching."
        ),
        "hot": EventFactory(title="Hot yoga", type="Yoga", description="Sweat."),
        "sound": EventFactory(title="Sound bath", type="Sound Bath", location="Lisbon"),
    }


def found(api_client, query: str) -> list[int]:
    return [event["id"] for event in page(api_client, query)["results"]]


@pytest.mark.postgres
def test_search_finds_stemmed_words_and_prefixes_best_first(api_client, texts):
    # "breath": the description's "breathing" (stemmed) and the title's "Breathwork" (prefix);
    # the title match ranks first (title and type weigh more than the description).
    assert found(api_client, "?search=breath") == [texts["breathwork"].pk, texts["breathing"].pk]
    assert found(api_client, "?search=lisbon") == [texts["sound"].pk]  # the location


@pytest.mark.postgres
def test_search_takes_phrases_exclusions_and_or(api_client, texts):
    assert found(api_client, '?search="hot yoga"') == [texts["hot"].pk]
    assert set(found(api_client, "?search=yoga -hot")) == {texts["breathing"].pk}
    assert set(found(api_client, "?search=sweat or lisbon")) == {texts["hot"].pk, texts["sound"].pk}


@pytest.mark.postgres
def test_search_keeps_a_given_ordering(api_client, texts):
    Event.objects.filter(pk=texts["breathing"].pk).update(rating=Decimal("5.0"))
    Event.objects.filter(pk=texts["breathwork"].pk).update(rating=Decimal("3.0"))
    assert found(api_client, "?search=breath&ordering=-rating") == [
        texts["breathing"].pk,
        texts["breathwork"].pk,
    ]


@pytest.mark.postgres
def test_the_words_follow_the_event_when_it_is_saved(api_client, facilitator):
    event = EventFactory(title="Tea ceremony", facilitator=facilitator)
    event.title = "Cacao ceremony"
    event.save()
    assert found(api_client, "?search=cacao") == [event.pk]
    assert found(api_client, "?search=tea") == []


def plan(query: str) -> str:
    """EXPLAIN of the page query the list runs for `query`, with sequential scans disabled so
    the plan shows whether an index can serve the query at all (a tiny table would be
    scanned)."""
    from rest_framework.test import APIClient

    with CaptureQueriesContext(connection) as captured:
        APIClient().get(f"/events{query}")
    select = next(q["sql"] for q in captured if "LIMIT" in q["sql"] and "COUNT" not in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {select}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("", "event_bookable_starts_idx"),
        ("?ordering=-rating", "event_bookable_rating_idx"),
        ("?ordering=price", "event_bookable_price_idx"),
        ("?type=Yoga", "event_bookable_type_idx"),
        ("?page=3&page_size=2", "event_bookable_starts_idx"),
    ],
)
def test_each_order_of_the_catalogue_is_an_index_read_without_sorting(query, index):
    EventFactory.create_batch(8)
    explained = plan(query)
    assert index in explained, explained
    assert "Sort" not in explained, explained
