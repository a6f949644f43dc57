"""The waitlist through the API: joining, offers in order, accept, decline, expiry, leaving.

Concurrency, a stopped worker and paid offers through Checkout: test_waitlist_robustness.py.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services
from bookings.models import Booking, WaitlistEntry
from bookings.services import waitlist
from conftest import client_for, run_tasks
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def join(user, event, **body):
    return client_for(user).post(f"/events/{event.pk}/waitlist", body, format="json")


def sold_out_event(capacity=2, price=Decimal("0")) -> tuple[Event, list[Booking]]:
    event = EventFactory(price=price, capacity=capacity)
    bookings = [services.book_event(user=UserFactory(), event_id=event.pk) for _ in range(capacity)]
    return event, bookings


def counters(event: Event) -> tuple[int, int]:
    event.refresh_from_db()
    return event.seats_claimed, event.seats_waiting


def statuses(*people) -> list[str]:
    return [WaitlistEntry.objects.get(user=person).status for person in people]


# --- joining ---------------------------------------------------------------------------------


def test_joining_a_sold_out_event_answers_the_entry_with_its_place():
    event, _ = sold_out_event()
    first, second = UserFactory(), UserFactory()

    one = join(first, event)
    two = join(second, event, seats=2)

    assert one.status_code == 201, one.json()
    assert {k: one.json()[k] for k in ("event_id", "seats", "status", "position")} == {
        "event_id": event.pk,
        "seats": 1,
        "status": "waiting",
        "position": 1,
    }
    assert one.json()["offer_expires_at"] is None and one.json()["created_at"]
    assert (two.json()["position"], two.json()["seats"]) == (2, 2)
    assert counters(event) == (2, 3)
    listed = client_for(second).get("/waitlist/").json()["results"]
    assert [entry["id"] for entry in listed] == [two.json()["id"]]
    assert client_for(first).get(f"/waitlist/{two.json()['id']}").status_code == 404


def test_joining_while_the_seats_can_be_booked_is_409_seats_available():
    event = EventFactory(price=0, capacity=3)
    services.book_event(user=UserFactory(), event_id=event.pk)

    response = join(UserFactory(), event, seats=2)

    assert response.status_code == 409
    assert (response.json()["code"], response.json()["seats_left"]) == ("seats_available", 2)
    assert join(UserFactory(), event, seats=3).status_code == 201  # more than are left
    assert not WaitlistEntry.objects.filter(seats=2).exists()


def test_joining_is_refused_to_bookers_to_those_waiting_and_for_closed_or_past_events():
    event, bookings = sold_out_event()
    person = UserFactory()
    first = join(person, event).json()

    again = join(person, event)
    booked = join(bookings[0].user, event)
    too_many = join(UserFactory(), event, seats=11)
    cancelled = EventFactory(price=0, capacity=1, status="cancelled")
    event.waitlist_open = False
    event.save()
    closed = join(UserFactory(), event)

    assert again.status_code == 409 and again.json()["code"] == "already_waiting"
    assert again.json()["entry"]["id"] == first["id"]
    assert booked.status_code == 409 and booked.json()["code"] == "already_booked"
    assert too_many.status_code == 400 and "seats" in too_many.json()["fields"]
    assert join(UserFactory(), cancelled).json()["code"] == "event_not_bookable"
    assert closed.status_code == 409 and closed.json()["code"] == "waitlist_closed"
    assert join(UserFactory(), EventFactory.build(pk=999_999)).status_code == 404
    assert WaitlistEntry.objects.count() == 1


def test_the_seats_waited_for_are_not_for_sale_to_anyone_else():
    event, bookings = sold_out_event(capacity=3)
    join(UserFactory(), event, seats=1)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)  # no worker run yet

    outsider = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")

    assert outsider.status_code == 409
    assert (outsider.json()["code"], outsider.json()["seats_left"]) == ("sold_out", 0)
    assert client_for(UserFactory()).get(f"/events/{event.pk}").json()["seats_left"] == 0


# --- offers ------------------------------------------------------------------------------------


def test_freed_seats_are_offered_in_the_order_people_joined_and_reserved_for_them():
    event, bookings = sold_out_event(capacity=2)
    first, second, third = UserFactory(), UserFactory(), UserFactory()
    for person in (first, second, third):
        join(person, event)

    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    run_tasks()

    assert statuses(first, second, third) == ["offered", "waiting", "waiting"]
    offer = WaitlistEntry.objects.get(user=first)
    assert offer.offer_expires_at == offer.offered_at + timedelta(hours=12)
    assert counters(event) == (2, 2)  # the offer's seat is taken for everyone else
    outsider = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")
    assert outsider.json()["code"] == "sold_out"
    assert (
        client_for(second)
        .get(f"/waitlist/{WaitlistEntry.objects.get(user=second).pk}")
        .json()["position"]
        == 1
    )


def test_an_offer_accepted_becomes_a_confirmed_booking_of_its_seats():
    event, bookings = sold_out_event(capacity=3)
    person = UserFactory()
    entry = join(person, event, seats=2).json()
    for booking in bookings[:2]:
        services.cancel_booking(booking=booking, by=booking.user)
    run_tasks()

    response = client_for(person).post(
        f"/waitlist/{entry['id']}/accept", {"attendees": [{"name": "Kai"}]}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["seats"]) == ("confirmed", 2)
    assert [a["name"] for a in body["attendees"]] == [person.name, "Kai"]
    assert counters(event) == (3, 0)
    after = client_for(person).get(f"/waitlist/{entry['id']}").json()
    assert (after["status"], after["booking_id"]) == ("accepted", body["id"])
    again = client_for(person).post(f"/waitlist/{entry['id']}/accept")
    assert again.status_code == 409 and again.json()["code"] == "offer_not_open"
    assert Event.objects.filter(pk=event.pk).recount_claimed_seats() == 1
    assert counters(event) == (3, 0)  # the counter agreed with the bookings


def test_a_declined_offer_goes_to_the_next_person():
    event, bookings = sold_out_event(capacity=1)
    first, second = UserFactory(), UserFactory()
    join(first, event)
    join(second, event)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    run_tasks()

    declined = client_for(first).post(
        f"/waitlist/{WaitlistEntry.objects.get(user=first).pk}/decline"
    )
    run_tasks()

    assert declined.status_code == 200 and declined.json()["status"] == "left"
    assert statuses(first, second) == ["left", "offered"]
    assert counters(event) == (1, 0)


def test_an_offer_not_taken_in_time_expires_and_goes_to_the_next_person():
    event, bookings = sold_out_event(capacity=1)
    first, second = UserFactory(), UserFactory()
    join(first, event)
    join(second, event)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    run_tasks()
    offer = WaitlistEntry.objects.get(user=first)

    with time_machine.travel(offer.offer_expires_at + timedelta(minutes=1)):
        late = client_for(first).post(f"/waitlist/{offer.pk}/accept")
        call_command("sweep", stdout=open("/dev/null", "w"))  # noqa: SIM115
        run_tasks()

    assert late.status_code == 409 and late.json()["code"] == "offer_not_open"
    assert statuses(first, second) == ["expired", "offered"]
    assert counters(event) == (1, 0)


def test_leaving_with_an_offer_passes_it_on_and_leaving_twice_is_409():
    event, bookings = sold_out_event(capacity=1)
    first, second = UserFactory(), UserFactory()
    join(first, event)
    join(second, event)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    run_tasks()
    entry = WaitlistEntry.objects.get(user=first)

    left = client_for(first).delete(f"/waitlist/{entry.pk}")
    twice = client_for(first).delete(f"/waitlist/{entry.pk}")
    run_tasks()

    assert left.status_code == 200 and left.json()["status"] == "left"
    assert twice.status_code == 409 and twice.json()["code"] == "not_waiting"
    assert statuses(first, second) == ["left", "offered"]


def test_leaving_while_waiting_gives_the_seats_back_to_the_public():
    event, bookings = sold_out_event(capacity=1)
    person = UserFactory()
    entry = join(person, event).json()
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    client_for(person).delete(f"/waitlist/{entry['id']}")
    run_tasks()

    assert counters(event) == (0, 0)
    outsider = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")
    assert outsider.status_code == 201


def test_a_larger_entry_waits_at_the_head_unless_the_setting_lets_smaller_ones_pass(settings):
    event, bookings = sold_out_event(capacity=3)
    big, small = UserFactory(), UserFactory()
    join(big, event, seats=2)
    join(small, event, seats=1)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    run_tasks()

    assert statuses(big, small) == ["waiting", "waiting"]  # one seat: the head needs two

    settings.WAITLIST_SKIP_LARGER = True
    waitlist.offer_freed_seats(event_id=event.pk)

    assert statuses(big, small) == ["waiting", "offered"]
    big_entry = WaitlistEntry.objects.get(user=big)
    assert waitlist.position(big_entry) == 1  # passed over, not moved back

    services.cancel_booking(booking=bookings[1], by=bookings[1].user)
    services.cancel_booking(booking=bookings[2], by=bookings[2].user)
    run_tasks()
    assert statuses(big, small) == ["offered", "offered"]
    assert counters(event) == (3, 0)


def test_raising_the_capacity_offers_the_new_seats():
    owner = FacilitatorFactory()
    event = EventFactory(facilitator=owner, price=0, capacity=1)
    services.book_event(user=UserFactory(), event_id=event.pk)
    person = UserFactory()
    join(person, event, seats=2)

    response = client_for(owner).patch(f"/events/{event.pk}", {"capacity": 3}, format="json")
    run_tasks()

    assert response.status_code == 200
    assert statuses(person) == ["offered"]
    assert counters(event) == (3, 0)


def test_an_offer_never_outlasts_the_event_start():
    event = EventFactory(price=0, capacity=1, starts_at=timezone.now() + timedelta(hours=2))
    event.ends_at = event.starts_at + timedelta(hours=1)
    event.save()
    booked = services.book_event(user=UserFactory(), event_id=event.pk)
    person = UserFactory()
    join(person, event)
    services.cancel_booking(booking=booked, by=booked.user)
    run_tasks()

    assert WaitlistEntry.objects.get(user=person).offer_expires_at == event.starts_at


def test_a_cancelled_event_ends_its_waitlist():
    event, _ = sold_out_event(capacity=1)
    people = [UserFactory() for _ in range(3)]
    for person in people:
        join(person, event)

    services.cancel_event(event=event, by=event.facilitator, reason="flooded")
    run_tasks()

    assert statuses(*people) == ["expired"] * 3
    assert {entry.reason for entry in WaitlistEntry.objects.all()} == {"event cancelled"}
    assert counters(event) == (0, 0)


def test_the_catalogue_counts_waited_for_seats_as_taken(api_client):
    event, bookings = sold_out_event(capacity=3)
    join(UserFactory(), event, seats=1)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    services.cancel_booking(booking=bookings[1], by=bookings[1].user)

    row = next(e for e in api_client.get("/events").json()["results"] if e["id"] == event.pk)
    available = api_client.get("/events?available=true").json()["results"]

    assert (row["seats_left"], row["seats_waiting"]) == (1, 1)
    assert event.pk in [e["id"] for e in available]


def test_the_recount_keeps_the_seats_of_open_offers():
    event, bookings = sold_out_event(capacity=2)
    join(UserFactory(), event)
    services.cancel_booking(booking=bookings[0], by=bookings[0].user)
    run_tasks()
    assert counters(event) == (2, 0)

    Event.objects.filter(pk=event.pk).recount_claimed_seats()

    assert counters(event) == (2, 0)
    outsider = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")
    assert outsider.json()["code"] == "sold_out"
