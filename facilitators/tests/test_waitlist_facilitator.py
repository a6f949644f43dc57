"""The waitlist as the facilitator sees it: the registrations page, their events list, closing
it (API and back office) and the back office's read-only waitlist."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services
from bookings.exceptions import WaitlistClosed
from bookings.models import Booking, WaitlistEntry
from bookings.services import waitlist
from conftest import client_for, run_tasks
from events.models import Event
from events.tests.factories import EventFactory
from facilitators import selectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return FacilitatorFactory(name="Maya", email="maya@example.com")


def sold_out(facilitator, *, capacity: int = 2, **fields) -> Event:
    """A free event whose every seat is booked (confirmed), so people may join its waitlist."""
    event = EventFactory(facilitator=facilitator, capacity=capacity, price=Decimal("0"), **fields)
    for _ in range(capacity):
        services.book_event(user=UserFactory(), event_id=event.pk)
    return event


def join(event: Event, *, seats: int = 1, **person) -> WaitlistEntry:
    return waitlist.join(user=UserFactory(**person), event_id=event.pk, seats=seats)


def free_a_seat(event: Event) -> None:
    """Cancel the event's first booking; the worker offers its seat to the next in line."""
    booking = Booking.objects.filter(event=event, status="confirmed").order_by("pk").first()
    services.cancel_booking(booking=booking, by=booking.user)
    run_tasks()


# --- /facilitator/registrations/{id} ----------------------------------------------------------


def test_registrations_show_the_open_waitlist_in_order_with_positions(owner):
    event = sold_out(owner)
    carol = join(event, name="Carol", email="carol@example.com")
    dan = join(event, seats=2, name="Dan", email="dan@example.com")
    gone = join(event)
    waitlist.leave(entry=gone, by=gone.user)
    erin = join(event, name="Erin", email="erin@example.com")
    join(sold_out(owner))  # another event's
    free_a_seat(event)  # offered to Carol, the first to join

    body = client_for(owner).get(f"/facilitator/registrations/{event.pk}").json()

    summary = body["summary"]
    assert (summary["waitlist_waiting"], summary["seats_waiting"]) == (2, 3)
    assert (summary["waitlist_offered"], summary["waitlist_open"]) == (1, True)
    assert summary["seats_left"] == 0  # Carol's offer holds the freed seat
    assert body["waitlist"]["count"] == 3
    rows = body["waitlist"]["results"]
    assert [(row["id"], row["status"], row["position"]) for row in rows] == [
        (carol.pk, "offered", None),
        (dan.pk, "waiting", 1),
        (erin.pk, "waiting", 2),
    ]
    dan.refresh_from_db()
    assert rows[1] == {
        "id": dan.pk,
        "user_id": dan.user_id,
        "name": "Dan",
        "email": "dan@example.com",
        "seats": 2,
        "status": "waiting",
        "position": waitlist.position(dan),
        "created_at": rows[1]["created_at"],
        "offer_expires_at": None,
    }
    assert rows[1]["created_at"].endswith("Z")
    assert rows[0]["offer_expires_at"] is not None
    assert rows[2]["position"] == waitlist.position(WaitlistEntry.objects.get(pk=erin.pk))


def test_registrations_keep_the_bookings_page_beside_the_waitlist(owner):
    event = sold_out(owner)
    join(event)

    body = client_for(owner).get(f"/facilitator/registrations/{event.pk}?page_size=1").json()

    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]
    assert body["summary"]["confirmed"] == 2
    assert body["waitlist"]["count"] == 1


def test_registrations_show_the_first_entries_and_count_them_all(owner, monkeypatch):
    monkeypatch.setattr(selectors, "WAITLIST_SHOWN", 3)
    event = sold_out(owner)
    entries = [join(event) for _ in range(5)]

    body = client_for(owner).get(f"/facilitator/registrations/{event.pk}").json()

    assert body["waitlist"]["count"] == 5
    assert [row["id"] for row in body["waitlist"]["results"]] == [e.pk for e in entries[:3]]
    assert [row["position"] for row in body["waitlist"]["results"]] == [1, 2, 3]


def test_registrations_query_count_does_not_grow_with_the_waitlist(owner):
    client = client_for(owner)
    few, many = sold_out(owner), sold_out(owner)
    join(few)
    for _ in range(10):
        join(many)
    free_a_seat(many)  # one of them offered

    def queries(event: Event) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/facilitator/registrations/{event.pk}")
            assert response.status_code == 200
        return len(captured)

    assert queries(few) == queries(many)


# --- /facilitator/events ---------------------------------------------------------------------


def test_own_events_count_waiting_entries_without_touching_booking_counts(owner):
    event = sold_out(owner, capacity=3)
    for _ in range(3):
        join(event)
    join(event, seats=2)
    free_a_seat(event)  # the first entry offered: no longer waiting
    quiet = EventFactory(facilitator=owner)

    rows = client_for(owner).get("/facilitator/events").json()["results"]

    counts = {
        row["id"]: (row["waitlist_waiting"], row["seats_waiting"], row["bookings_confirmed"],
                    row["seats_confirmed"])
        for row in rows
    }  # fmt: skip
    assert counts == {event.pk: (3, 4, 2, 2), quiet.pk: (0, 0, 0, 0)}


def test_own_events_query_count_does_not_grow_with_waitlists(owner):
    client = client_for(owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/facilitator/events").status_code == 200
        return len(captured)

    join(sold_out(owner))
    before = queries()
    for _ in range(3):
        event = sold_out(owner)
        join(event)
        join(event)

    assert queries() == before


# --- closing the waitlist --------------------------------------------------------------------


def test_owner_closes_the_waitlist_through_the_event_and_joining_is_refused(owner):
    event = sold_out(owner)
    waiting = join(event)
    client = client_for(owner)

    closed = client.patch(f"/events/{event.pk}", {"waitlist_open": False}, format="json")
    refused = client_for(UserFactory()).post(f"/events/{event.pk}/waitlist", {}, format="json")
    summary = client.get(f"/facilitator/registrations/{event.pk}").json()["summary"]

    assert closed.status_code == 200 and closed.json()["waitlist_open"] is False
    assert refused.status_code == 409 and refused.json()["code"] == "waitlist_closed"
    assert summary["waitlist_open"] is False
    assert summary["waitlist_waiting"] == 1  # those waiting keep their place
    assert waitlist.position(WaitlistEntry.objects.get(pk=waiting.pk)) == 1

    reopened = client.patch(f"/events/{event.pk}", {"waitlist_open": True}, format="json")
    joined = client_for(UserFactory()).post(f"/events/{event.pk}/waitlist", {}, format="json")

    assert reopened.status_code == 200 and joined.status_code == 201


def test_another_facilitator_cannot_close_the_waitlist(owner):
    event = sold_out(owner)

    response = client_for(FacilitatorFactory()).patch(
        f"/events/{event.pk}", {"waitlist_open": False}, format="json"
    )

    assert response.status_code == 403
    event.refresh_from_db()
    assert event.waitlist_open is True


# --- the back office -------------------------------------------------------------------------


@pytest.fixture
def backoffice(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def mine(owner) -> Event:
    event = sold_out(owner, title="Maya's Yoga")
    join(event, email="first@example.com")
    join(event, email="second@example.com")
    return event


@pytest.fixture
def theirs() -> Event:
    event = sold_out(FacilitatorFactory(), title="Ravi's Breathwork")
    join(event, email="their-waiter@example.com")
    return event


def test_back_office_waitlist_lists_only_own_events_entries_with_positions(
    backoffice, mine, theirs
):
    response = backoffice.get("/backoffice/bookings/waitlistentry/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "first@example.com" in page and "second@example.com" in page
    assert "their-waiter@example.com" not in page
    rows = list(response.context["cl"].result_list)
    assert [(row.user.email, row.queue_position) for row in rows] == [
        ("first@example.com", 1),
        ("second@example.com", 2),
    ]


def test_back_office_waitlist_entry_of_another_facilitator_is_404(backoffice, mine, theirs):
    own = WaitlistEntry.objects.filter(event=mine).first()
    other = WaitlistEntry.objects.get(event=theirs)

    assert backoffice.get(f"/backoffice/bookings/waitlistentry/{own.pk}/change/").status_code == 200
    assert (
        backoffice.get(f"/backoffice/bookings/waitlistentry/{other.pk}/change/").status_code == 404
    )
    filtered = backoffice.get(f"/backoffice/bookings/waitlistentry/?event__id__exact={theirs.pk}")
    assert "their-waiter@example.com" not in filtered.content.decode()


def test_back_office_waitlist_is_read_only(backoffice, mine):
    entry = WaitlistEntry.objects.filter(event=mine).first()

    page = backoffice.get(f"/backoffice/bookings/waitlistentry/{entry.pk}/change/")
    posted = backoffice.post(
        f"/backoffice/bookings/waitlistentry/{entry.pk}/change/", {"status": "left"}
    )

    assert 'name="status"' not in page.content.decode()
    assert posted.status_code == 403 or WaitlistEntry.objects.get(pk=entry.pk).status == "waiting"
    assert backoffice.get("/backoffice/bookings/waitlistentry/add/").status_code == 403
    assert (
        backoffice.get(f"/backoffice/bookings/waitlistentry/{entry.pk}/delete/").status_code == 403
    )


def test_staff_see_every_waitlist_in_the_back_office(admin_client, mine, theirs):
    page = admin_client.get("/backoffice/bookings/waitlistentry/").content.decode()

    assert "first@example.com" in page and "their-waiter@example.com" in page


def test_back_office_event_list_links_to_its_waitlist(backoffice, mine):
    page = backoffice.get("/backoffice/events/event/").content.decode()

    assert f"/backoffice/bookings/waitlistentry/?event__id__exact={mine.pk}" in page
    assert f'event__id__exact={mine.pk}">2</a>' in page


def test_back_office_event_form_closes_the_waitlist(backoffice, mine):
    url = f"/backoffice/events/event/{mine.pk}/change/"
    form = backoffice.get(url).context["adminform"].form
    assert "waitlist_open" in form.fields
    data = {
        name: form[name].value() for name in form.fields if name not in ("starts_at", "ends_at")
    }
    data |= {
        "starts_at_0": mine.starts_at.strftime("%Y-%m-%d"),
        "starts_at_1": mine.starts_at.strftime("%H:%M:%S"),
        "ends_at_0": mine.ends_at.strftime("%Y-%m-%d"),
        "ends_at_1": mine.ends_at.strftime("%H:%M:%S"),
    }
    del data["waitlist_open"]  # an unticked checkbox is not sent

    saved = backoffice.post(url, data)

    assert saved.status_code == 302, saved.context["adminform"].form.errors
    mine.refresh_from_db()
    assert mine.waitlist_open is False
    assert WaitlistEntry.objects.filter(event=mine).open().count() == 2


def test_back_office_actions_close_and_open_own_waitlists_only(backoffice, mine, theirs):
    def act(action: str, *events: Event):
        return backoffice.post(
            "/backoffice/events/event/",
            {"action": action, "_selected_action": [event.pk for event in events]},
        )

    closed = act("close_waitlist", mine, theirs)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert closed.status_code == 302
    assert (mine.waitlist_open, theirs.waitlist_open) == (False, True)
    with pytest.raises(WaitlistClosed):
        join(mine)

    act("open_waitlist", mine)
    mine.refresh_from_db()
    assert mine.waitlist_open is True


def test_back_office_new_event_form_has_the_waitlist_switch(backoffice):
    page = backoffice.get("/backoffice/events/event/add/")

    assert page.status_code == 200
    assert page.context["adminform"].form["waitlist_open"].value() is True
