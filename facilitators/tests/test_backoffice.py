"""The facilitators' back office at /backoffice/, through Django's test client."""

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import TEST_PASSWORD, FacilitatorFactory, UserFactory
from bookings import services
from bookings.models import Booking
from conftest import run_tasks
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return FacilitatorFactory(email="maya@example.com")


@pytest.fixture
def mine(owner):
    event = EventFactory(facilitator=owner, title="Maya's Yoga", price=Decimal("0"), capacity=5)
    services.book_event(user=UserFactory(email="attendee@example.com"), event_id=event.pk)
    return event


@pytest.fixture
def theirs():
    event = EventFactory(title="Ravi's Breathwork", price=Decimal("0"))
    services.book_event(user=UserFactory(email="other-attendee@example.com"), event_id=event.pk)
    return event


@pytest.fixture
def backoffice(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def test_facilitator_signs_in_with_password(owner):
    client = Client()

    response = client.post(
        "/backoffice/login/?next=/backoffice/",
        {"username": "maya@example.com", "password": TEST_PASSWORD},
    )

    assert response.status_code == 302
    assert client.get("/backoffice/").status_code == 200


def test_plain_user_cannot_sign_in(db):
    UserFactory(email="someone@example.com")
    client = Client()

    response = client.post(
        "/backoffice/login/", {"username": "someone@example.com", "password": TEST_PASSWORD}
    )

    assert response.status_code == 200
    assert "password of a facilitator account" in response.content.decode()  # as a wrong one
    assert client.get("/backoffice/").status_code == 302  # back to the login page


def test_event_list_shows_only_own_events(backoffice, mine, theirs):
    page = backoffice.get("/backoffice/events/event/").content.decode()

    assert "Maya&#x27;s Yoga" in page or "Maya's Yoga" in page
    assert "Breathwork" not in page


def test_booking_list_shows_only_own_events_bookings(backoffice, mine, theirs):
    page = backoffice.get("/backoffice/bookings/booking/").content.decode()

    assert "attendee@example.com" in page
    assert "other-attendee@example.com" not in page


def test_other_facilitators_objects_are_404(backoffice, mine, theirs):
    their_booking = Booking.objects.get(event=theirs)

    assert backoffice.get(f"/backoffice/events/event/{theirs.pk}/change/").status_code == 404
    assert (
        backoffice.get(f"/backoffice/bookings/booking/{their_booking.pk}/change/").status_code
        == 404
    )
    assert backoffice.get(f"/backoffice/events/event/{mine.pk}/change/").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/backoffice/accounts/user/",
        "/backoffice/crm/crmbooking/",
        "/backoffice/djstripe/customer/",
        "/backoffice/bookings/refund/",
    ],
)
def test_users_crm_and_stripe_tables_are_not_in_the_back_office(backoffice, path):
    assert backoffice.get(path).status_code == 404


def test_facilitator_cannot_use_the_staff_admin(backoffice):
    response = backoffice.get("/admin/bookings/booking/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_own_booking_is_read_only_with_audit_trail(backoffice, mine):
    booking = Booking.objects.get(event=mine)

    page = backoffice.get(f"/backoffice/bookings/booking/{booking.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "booking.created" in html
    assert 'name="status"' not in html


def test_edit_own_event_through_the_service(backoffice, mine):
    form = backoffice.get(f"/backoffice/events/event/{mine.pk}/change/").context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(
        {
            "title": "Maya's Sunrise Yoga",
            "starts_at_0": mine.starts_at.strftime("%Y-%m-%d"),
            "starts_at_1": mine.starts_at.strftime("%H:%M:%S"),
            "ends_at_0": mine.ends_at.strftime("%Y-%m-%d"),
            "ends_at_1": mine.ends_at.strftime("%H:%M:%S"),
        }
    )
    data = {k: v for k, v in data.items() if k not in ("starts_at", "ends_at")}

    too_small = backoffice.post(
        f"/backoffice/events/event/{mine.pk}/change/", data | {"capacity": 0}
    )
    saved = backoffice.post(f"/backoffice/events/event/{mine.pk}/change/", data)

    assert too_small.status_code == 200  # the form again, with errors
    mine.refresh_from_db()
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert mine.title == "Maya's Sunrise Yoga"


def test_facilitator_adds_an_event_run_by_themselves(backoffice, owner, mine):
    starts = mine.starts_at
    response = backoffice.post(
        "/backoffice/events/event/add/",
        {
            "title": "Evening Meditation",
            "description": "",
            "type": "Meditation",
            "starts_at_0": starts.strftime("%Y-%m-%d"),
            "starts_at_1": "18:00:00",
            "ends_at_0": starts.strftime("%Y-%m-%d"),
            "ends_at_1": "19:00:00",
            "timezone": "Europe/Berlin",
            "location": "Berlin",
            "capacity": 8,
            "price": "12.00",
            "currency": "EUR",
        },
    )

    assert response.status_code == 302
    from events.models import Event

    created = Event.objects.get(title="Evening Meditation")
    assert created.facilitator == owner


def test_capacity_below_seats_taken_is_a_form_error(backoffice, mine):
    for _ in range(2):
        services.book_event(user=UserFactory(), event_id=mine.pk)
    form = backoffice.get(f"/backoffice/events/event/{mine.pk}/change/").context["adminform"].form
    data = {
        name: form[name].value() for name in form.fields if name not in ("starts_at", "ends_at")
    }
    data |= {
        "starts_at_0": mine.starts_at.strftime("%Y-%m-%d"),
        "starts_at_1": mine.starts_at.strftime("%H:%M:%S"),
        "ends_at_0": mine.ends_at.strftime("%Y-%m-%d"),
        "ends_at_1": mine.ends_at.strftime("%H:%M:%S"),
        "capacity": 2,
    }

    response = backoffice.post(f"/backoffice/events/event/{mine.pk}/change/", data)

    assert response.status_code == 200
    assert "3 seats are already taken" in response.content.decode()
    mine.refresh_from_db()
    assert mine.capacity == 5


def test_cancel_action_asks_for_confirmation_then_cancels_once(backoffice, mine):
    selection = {"action": "cancel_events", "_selected_action": [mine.pk]}

    confirm_page = backoffice.post("/backoffice/events/event/", selection)
    mine.refresh_from_db()
    assert confirm_page.status_code == 200
    assert "Yes, cancel these events" in confirm_page.content.decode()
    assert mine.status == "scheduled"

    done = backoffice.post(
        "/backoffice/events/event/", selection | {"confirm": "yes", "reason": "Venue closed"}
    )
    again = backoffice.post("/backoffice/events/event/", selection | {"confirm": "yes"})
    run_tasks()  # the worker settles its bookings

    assert done.status_code == 302 and again.status_code == 302
    mine.refresh_from_db()
    assert mine.status == "cancelled" and mine.cancellation_reason == "Venue closed"
    booking = Booking.objects.get(event=mine)
    assert booking.status == "cancelled"
    assert booking.audit.filter(change="booking.event_cancelled").count() == 1


def test_cancel_action_cannot_reach_other_facilitators_events(backoffice, mine, theirs):
    backoffice.post(
        "/backoffice/events/event/",
        {"action": "cancel_events", "_selected_action": [theirs.pk], "confirm": "yes"},
    )

    theirs.refresh_from_db()
    assert theirs.status == "scheduled"


def test_staff_keep_the_full_admin(admin_client, theirs):
    assert admin_client.get("/admin/accounts/user/").status_code == 200
    assert admin_client.get(f"/admin/events/event/{theirs.pk}/change/").status_code == 200


def test_another_facilitator_sees_nothing_of_mine(mine):
    client = Client()
    client.force_login(FacilitatorFactory())

    page = client.get("/backoffice/events/event/").content.decode()

    assert "Maya" not in page
    assert client.get(f"/backoffice/events/event/{mine.pk}/change/").status_code == 404


# --- group bookings: seats, attendees and the registrations export -----------------------------


def test_own_booking_shows_its_seats_and_attendees_read_only(backoffice, mine):
    group = services.book_event(
        user=UserFactory(name="Booker"),
        event_id=mine.pk,
        seats=3,
        attendees=[{"name": "Guest Bea", "email": "bea@example.com"}],
    )
    services.cancel_attendee(
        booking=group, attendee_id=group.attendees.get(name="Guest Bea").pk, by=group.user
    )

    page = backoffice.get(f"/backoffice/bookings/booking/{group.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Guest Bea" in html and "bea@example.com" in html
    assert "Guest 3 of Booker" in html
    assert "booking.attendee_cancelled" in html  # the audit row, with its seat
    assert 'name="attendees-0-name"' not in html  # read-only
    assert page.context["adminform"].form.instance.seats == 2
    listing = backoffice.get("/backoffice/bookings/booking/?q=bea@example.com").content.decode()
    assert "1 result" in listing  # a guest is found by their own email


def read_csv(response) -> list[list[str]]:
    assert response.streaming  # written out row by row, not built in memory
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def export_url(event) -> str:
    return f"/backoffice/events/event/{event.pk}/registrations.csv"


def test_registrations_export_has_one_row_per_attendee(backoffice, owner):
    event = EventFactory(facilitator=owner, price=Decimal("15.00"), capacity=10)
    booker = UserFactory(name="Alice", email="alice@example.com")
    group = services.book_event(
        user=booker,
        event_id=event.pk,
        seats=3,
        attendees=[{"name": "Bea", "email": "bea@example.com"}, {"name": "Cai"}],
    )
    services.mark_paid(booking_id=group.pk)
    services.cancel_attendee(
        booking=group,
        attendee_id=group.attendees.get(name="Cai").pk,
        by=booker,
        apply_cutoff=False,
    )
    single = services.book_event(
        user=UserFactory(name="Dan", email="dan@example.com"), event_id=event.pk
    )

    response = backoffice.get(export_url(event))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="registrations-event-{event.pk}.csv"'
    )
    header, *rows = read_csv(response)
    assert header == [
        "booking_id", "booker_name", "booker_email", "attendee_position", "attendee_name",
        "attendee_email", "attendee_status", "booking_status", "payment_status", "booking_seats",
    ]  # fmt: skip
    group_id, single_id = str(group.pk), str(single.pk)
    assert rows == [
        [group_id, "Alice", "alice@example.com", "1", "Alice", "alice@example.com", "confirmed",
         "confirmed", "paid", "2"],
        [group_id, "Alice", "alice@example.com", "2", "Bea", "bea@example.com", "confirmed",
         "confirmed", "paid", "2"],
        [group_id, "Alice", "alice@example.com", "3", "Cai", "", "cancelled", "confirmed",
         "paid", "2"],
        [single_id, "Dan", "dan@example.com", "1", "Dan", "dan@example.com", "pending", "pending",
         "unpaid", "1"],
    ]  # fmt: skip


def test_registrations_export_guards_against_formula_injection(backoffice, owner):
    event = EventFactory(facilitator=owner, price=Decimal("0"))
    booker = UserFactory(name='=HYPERLINK("https://evil.example")', email="booker@example.com")
    services.book_event(
        user=booker,
        event_id=event.pk,
        seats=4,
        attendees=[
            {"name": "+SUM(1,2)", "email": ""},
            {"name": "-2+3", "email": "minus@example.com"},
            {"name": "@cmd", "email": ""},
            {"name": "Plain = text", "email": ""},
        ],
    )

    _, *rows = read_csv(backoffice.get(export_url(event)))

    assert {row[1] for row in rows} == {'\'=HYPERLINK("https://evil.example")'}
    assert [row[4] for row in rows] == ["'+SUM(1,2)", "'-2+3", "'@cmd", "Plain = text"]
    assert [row[3] for row in rows] == ["1", "2", "3", "4"]  # numbers stay numbers


def test_event_list_links_each_event_to_its_export(backoffice, mine):
    page = backoffice.get("/backoffice/events/event/").content.decode()

    assert f'href="{export_url(mine)}"' in page


def test_registrations_export_of_another_facilitators_event_is_404(backoffice, theirs):
    response = backoffice.get(export_url(theirs))

    assert response.status_code == 404
    assert b"other-attendee@example.com" not in response.content


def test_staff_export_any_events_registrations(admin_client, theirs):
    _, *rows = read_csv(admin_client.get(export_url(theirs)))

    assert [row[5] for row in rows] == ["other-attendee@example.com"]


def test_registrations_export_needs_a_back_office_sign_in(client, mine):
    anonymous = client.get(export_url(mine))
    client.force_login(UserFactory())
    plain_user = client.get(export_url(mine))

    assert anonymous.status_code == 302 and "/backoffice/login/" in anonymous["Location"]
    assert plain_user.status_code == 302 and "/backoffice/login/" in plain_user["Location"]


def test_registrations_export_spans_chunks_in_one_query(backoffice, owner, monkeypatch):
    from facilitators import exports

    monkeypatch.setattr(exports, "CHUNK_SIZE", 50)
    event = EventFactory(facilitator=owner, price=Decimal("0"), capacity=500)

    def export_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            rows = read_csv(backoffice.get(export_url(event)))
        return len(rows) - 1, len(captured)

    for _ in range(4):
        services.book_event(user=UserFactory(), event_id=event.pk, seats=5)
    few, few_queries = export_queries()
    for _ in range(16):
        services.book_event(user=UserFactory(), event_id=event.pk, seats=5)
    many, many_queries = export_queries()

    assert (few, many) == (20, 100)
    # One query, fetched by chunks (on PostgreSQL through a server-side cursor): no query per
    # booking or attendee.
    assert many_queries == few_queries
