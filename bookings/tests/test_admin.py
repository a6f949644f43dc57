"""Staff review in the admin: events and bookings lists, read-only bookings with their audit."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from bookings import services
from bookings.models import Booking, WaitlistEntry
from bookings.services import waitlist
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def make_bookings(count: int) -> None:
    for event in EventFactory.create_batch(count):
        services.book_event(user=UserFactory(), event_id=event.pk)


@pytest.mark.parametrize("url", ["/admin/events/event/", "/admin/bookings/booking/"])
def test_changelist_query_count_does_not_grow_with_rows(admin_client, url):
    make_bookings(2)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    make_bookings(20)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200

    assert len(many) == len(few)


def test_event_list_shows_seats_left(admin_client):
    event = EventFactory(capacity=7, title="Sound Bath")
    services.book_event(user=UserFactory(), event_id=event.pk)

    page = admin_client.get("/admin/events/event/").content.decode()

    assert "Sound Bath" in page
    assert '<td class="field-seats_left">6</td>' in page


def test_booking_page_is_read_only_with_audit_trail(admin_client):
    booking = services.book_event(user=UserFactory(), event_id=EventFactory().pk)

    page = admin_client.get(f"/admin/bookings/booking/{booking.pk}/change/")
    posted = admin_client.post(
        f"/admin/bookings/booking/{booking.pk}/change/", {"status": "confirmed"}
    )

    assert page.status_code == 200
    html = page.content.decode()
    assert "booked" in html  # the audit row's reason
    assert 'name="status"' not in html
    assert posted.status_code == 403 or Booking.objects.get().status == "pending"
    assert admin_client.get("/admin/bookings/booking/add/").status_code == 403


def test_booking_search_by_user_email_and_event_title(admin_client):
    person = UserFactory(email="findme@example.com")
    services.book_event(user=person, event_id=EventFactory(title="Gong Bath").pk)
    make_bookings(2)

    by_email = admin_client.get("/admin/bookings/booking/?q=findme")
    by_title = admin_client.get("/admin/bookings/booking/?q=Gong")

    assert "findme@example.com" in by_email.content.decode()
    assert "1 result" in by_email.content.decode()
    assert "1 result" in by_title.content.decode()


def test_staff_see_the_emails_sent_for_a_booking(admin_client):
    from conftest import run_tasks

    booking = services.book_event(
        user=UserFactory(email="told@example.com"), event_id=EventFactory(price=0).pk
    )
    run_tasks()

    page = admin_client.get("/admin/bookings/bookingemail/?q=told@example.com").content.decode()

    assert "told@example.com" in page
    assert f"Booking #{booking.pk}" in page


def test_booking_page_shows_seats_and_attendees_read_only(admin_client):
    booker = UserFactory(name="Booker")
    group = services.book_event(
        user=booker,
        event_id=EventFactory(capacity=5).pk,
        seats=3,
        attendees=[{"name": "Guest Bea", "email": "bea@example.com"}],
    )
    bea = group.attendees.get(name="Guest Bea")
    services.cancel_attendee(booking=group, attendee_id=bea.pk, by=booker)

    page = admin_client.get(f"/admin/bookings/booking/{group.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Guest Bea" in html and "bea@example.com" in html and "Guest 3 of Booker" in html
    assert "booking.attendee_cancelled" in html
    assert str(bea) in html  # the audit row names the seat it cancelled
    assert 'name="attendees-0-name"' not in html
    assert 'name="attendees-TOTAL_FORMS"' in html  # the inline is there, with no form fields
    listing = admin_client.get("/admin/bookings/booking/").content.decode()
    assert '<td class="field-seats">2</td>' in listing


def test_booking_search_finds_a_guest_by_their_email(admin_client):
    services.book_event(
        user=UserFactory(),
        event_id=EventFactory().pk,
        seats=2,
        attendees=[{"name": "Guest", "email": "guest@example.com"}],
    )
    make_bookings(2)

    page = admin_client.get("/admin/bookings/booking/?q=guest@example.com").content.decode()

    assert "1 result" in page


def test_booking_page_query_count_does_not_grow_with_seats(admin_client):
    def queries(seats: int) -> int:
        booking = services.book_event(
            user=UserFactory(), event_id=EventFactory(capacity=10).pk, seats=seats
        )
        with CaptureQueriesContext(connection) as captured:
            assert (
                admin_client.get(f"/admin/bookings/booking/{booking.pk}/change/").status_code == 200
            )
        return len(captured)

    assert queries(1) == queries(8)


# --- the waitlist ------------------------------------------------------------------------------


def waitlisted_event(waiting: int, **fields):
    """A sold-out free event with `waiting` people on its waitlist (in that order)."""
    event = EventFactory(capacity=1, price=0, **fields)
    services.book_event(user=UserFactory(), event_id=event.pk)
    entries = [
        waitlist.join(user=UserFactory(email=f"waiting-{event.pk}-{n}@example.com"),
                      event_id=event.pk)
        for n in range(waiting)
    ]  # fmt: skip
    return event, entries


def test_waitlist_list_shows_entries_with_positions_filtered_and_searched(admin_client):
    _, (first, second, third) = waitlisted_event(3, title="Gong Bath")
    waitlist.leave(entry=second, by=second.user)
    waitlisted_event(2)

    listing = admin_client.get("/admin/bookings/waitlistentry/")
    waiting = admin_client.get("/admin/bookings/waitlistentry/?status__exact=waiting")
    by_title = admin_client.get("/admin/bookings/waitlistentry/?q=Gong")
    by_email = admin_client.get(f"/admin/bookings/waitlistentry/?q={third.user.email}")

    assert listing.status_code == 200
    positions = {row.pk: row.queue_position for row in listing.context["cl"].result_list}
    assert (positions[first.pk], positions[second.pk], positions[third.pk]) == (1, None, 2)
    assert waiting.context["cl"].result_count == 4
    assert by_title.context["cl"].result_count == 3
    assert [row.pk for row in by_email.context["cl"].result_list] == [third.pk]


def test_waitlist_entry_is_read_only(admin_client):
    _, (entry,) = waitlisted_event(1)

    page = admin_client.get(f"/admin/bookings/waitlistentry/{entry.pk}/change/")
    posted = admin_client.post(f"/admin/bookings/waitlistentry/{entry.pk}/change/", {"seats": 3})

    assert page.status_code == 200
    html = page.content.decode()
    assert entry.user.email in html and 'name="status"' not in html
    assert posted.status_code == 403 or WaitlistEntry.objects.get(pk=entry.pk).seats == 1
    assert admin_client.get("/admin/bookings/waitlistentry/add/").status_code == 403
    assert admin_client.get(f"/admin/bookings/waitlistentry/{entry.pk}/delete/").status_code == 403


def test_waitlist_list_query_count_does_not_grow_with_rows(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get("/admin/bookings/waitlistentry/").status_code == 200
        return len(captured)

    waitlisted_event(1)
    few = queries()
    waitlisted_event(10)

    assert queries() == few


def test_event_page_shows_seats_waiting_and_the_open_waitlist(admin_client):
    event, (first, gone, last) = waitlisted_event(3)
    waitlist.leave(entry=gone, by=gone.user)

    page = admin_client.get(f"/admin/events/event/{event.pk}/change/")
    listing = admin_client.get("/admin/events/event/").content.decode()

    assert page.status_code == 200
    html = page.content.decode()
    assert first.user.email in html and last.user.email in html
    assert gone.user.email not in html  # only open entries
    assert 'name="waitlist-TOTAL_FORMS"' in html and 'name="waitlist-0-seats"' not in html
    assert '<td class="field-seats_waiting">2</td>' in listing


def test_event_admin_actions_close_and_open_the_waitlist(admin_client):
    event, _ = waitlisted_event(1)
    selection = {"_selected_action": [event.pk]}

    closed = admin_client.post("/admin/events/event/", selection | {"action": "close_waitlist"})
    event.refresh_from_db()
    assert closed.status_code == 302 and event.waitlist_open is False
    assert WaitlistEntry.objects.filter(event=event).open().count() == 1

    admin_client.post("/admin/events/event/", selection | {"action": "open_waitlist"})
    event.refresh_from_db()
    assert event.waitlist_open is True
