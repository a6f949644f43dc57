"""A group booking's emails: each guest's own confirmation and invite, the booker's summary.

Driven through the API and the real worker; mail lands in Django's in-memory outbox. A guest
is an attendee other than the booker with an address that is not the booker's
(`bookings.emails.is_guest`).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from icalendar import Calendar

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services, tasks
from bookings.models import Attendee, Booking, BookingEmail
from bookings.services import event_cancellation
from bookings.tests.test_emails import html_of, invite_bytes, invite_of, sent_to
from conftest import client_for, run_tasks
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

HOST = "127.0.0.1"  # PUBLIC_BASE_URL's host in the test settings


@pytest.fixture
def host():
    return FacilitatorFactory(name="Maya Okafor", email="maya@example.com")


@pytest.fixture
def booker():
    return UserFactory(name="Alice Rivera", email="alice@example.com")


@pytest.fixture
def free_event(host):
    return EventFactory(
        facilitator=host, price=Decimal("0"), title="Morning Yoga", location="Studio 3, Berlin"
    )


@pytest.fixture
def paid_event(host):
    return EventFactory(
        facilitator=host, price=Decimal("49.50"), currency="EUR", title="Sound Bath", capacity=5
    )


FRIENDS = [
    {"name": "Bob Stone", "email": "bob@example.com"},
    {"name": "Carol Diaz", "email": "carol@example.com"},
]


def book(user, event, *, seats: int, attendees: list[dict]) -> Booking:
    response = client_for(user).post(
        "/bookings/",
        {"event_id": event.pk, "seats": seats, "attendees": attendees},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return Booking.objects.get(pk=response.json()["id"])


def seat_of(booking: Booking, name: str) -> Attendee:
    return booking.attendees.get(name=name)


def cancel_seat(user, booking: Booking, attendee: Attendee) -> None:
    response = client_for(user).post(f"/bookings/{booking.pk}/attendees/{attendee.pk}/cancel")
    assert response.status_code == 200, response.json()


def vevent_of(message):
    calendar = invite_of(message)
    (vevent,) = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), vevent


# --- confirmations --------------------------------------------------------------------------


def test_a_group_booking_confirms_each_guest_with_their_own_invite_and_sums_up_to_the_booker(
    booker, host, free_event
):
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    bob, carol = seat_of(booking, "Bob Stone"), seat_of(booking, "Carol Diaz")

    run_tasks()

    (summary,) = sent_to("alice@example.com")
    (to_bob,) = sent_to("bob@example.com")
    (to_carol,) = sent_to("carol@example.com")
    (registration,) = sent_to("maya@example.com")
    assert len(mail.outbox) == 4

    # The booker: every seat, who is in it, and who got an invite of their own.
    assert summary.subject == "Ahoum: Your booking for Morning Yoga is confirmed"
    assert "Your booking for 3 seats is confirmed. This session is free." in summary.body
    assert (
        "Seats:\n"
        "1. Alice Rivera (you)\n"
        "2. Bob Stone (their own invite: bob@example.com)\n"
        "3. Carol Diaz (their own invite: carol@example.com)\n"
    ) in summary.body
    assert "<li>Bob Stone (their own invite: bob@example.com)</li>" in html_of(summary)
    method, booker_event = vevent_of(summary)
    assert method == "REQUEST"
    assert str(booker_event["UID"]) == f"booking-{booking.pk}@{HOST}"
    assert str(booker_event["ATTENDEE"]) == "mailto:alice@example.com"

    # Each guest: their own seat, their own entry; nothing of the booker's page or money.
    for message, seat in ((to_bob, bob), (to_carol, carol)):
        assert message.subject == "Ahoum: Your seat at Morning Yoga is confirmed"
        assert message.body.startswith(f"Hello {seat.name},")
        for body in (message.body, html_of(message)):
            assert (
                "Alice Rivera booked a seat for you at this session, and it is confirmed." in body
            )
            assert "Studio 3, Berlin" in body and "Maya Okafor" in body
            assert f"/bookings/{booking.pk}" not in body  # the booker's page, not theirs
        method, vevent = vevent_of(message)
        assert method == "REQUEST"
        assert str(vevent["UID"]) == f"attendee-{seat.pk}@{HOST}"
        assert str(vevent["ATTENDEE"]) == f"mailto:{seat.email}"
        assert vevent["ATTENDEE"].params["CN"] == seat.name
        assert str(vevent["STATUS"]) == "CONFIRMED"
        assert vevent["SEQUENCE"] == booker_event["SEQUENCE"]
        assert "URL" not in vevent
        assert "Booked for you by Alice Rivera" in str(vevent["DESCRIPTION"])
    uids = {str(vevent_of(message)[1]["UID"]) for message in (summary, to_bob, to_carol)}
    assert len(uids) == 3

    # The facilitator: one registration, with its seats.
    assert registration.subject == "Ahoum: New registration for Morning Yoga"
    for body in (registration.body, html_of(registration)):
        assert "Alice Rivera (alice@example.com) has 3 confirmed seats at your event." in body
    assert invite_of(registration) is None

    rows = BookingEmail.objects.filter(booking=booking)
    assert sorted(rows.values_list("recipient_kind", "attendee_id", "kind", "to_email")) == [
        ("attendee", None, "confirmed", "alice@example.com"),
        ("facilitator", None, "new_registration", "maya@example.com"),
        ("guest", bob.pk, "confirmed", "bob@example.com"),
        ("guest", carol.pk, "confirmed", "carol@example.com"),
    ]
    assert set(rows.values_list("status", flat=True)) == {"succeeded"}


def test_a_paid_group_is_confirmed_to_its_guests_only_once_paid(booker, host, paid_event):
    booking = book(booker, paid_event, seats=3, attendees=FRIENDS)
    run_tasks()
    assert mail.outbox == []  # a hold waiting for payment: nobody is told yet

    services.mark_paid(booking_id=booking.pk)
    run_tasks()

    (summary,) = sent_to("alice@example.com")
    assert (
        "Your booking for 3 seats is confirmed. "
        "We received your payment of 148.50 EUR (3 seats at 49.50 EUR)."
    ) in summary.body
    assert len(sent_to("bob@example.com")) == len(sent_to("carol@example.com")) == 1
    assert "refund" not in sent_to("bob@example.com")[0].body
    (registration,) = sent_to("maya@example.com")
    assert "has 3 confirmed seats at your event and paid 148.50 EUR." in registration.body
    assert len(mail.outbox) == 4


def test_a_guest_without_an_email_gets_nothing_and_is_listed_to_the_booker(booker, free_event):
    booking = book(booker, free_event, seats=2, attendees=[{"name": "Dan Park"}])
    run_tasks()

    (summary,) = sent_to("alice@example.com")
    assert "Seats:\n1. Alice Rivera (you)\n2. Dan Park\n" in summary.body
    assert len(mail.outbox) == 2  # the booker and the facilitator

    cancel_seat(booker, booking, seat_of(booking, "Dan Park"))
    run_tasks()

    _, seat_cancelled = sent_to("alice@example.com")
    assert "The seat of Dan Park is cancelled" in seat_cancelled.body
    assert "has been sent the cancellation" not in seat_cancelled.body
    assert len(mail.outbox) == 3


def test_a_seat_listed_with_the_bookers_email_is_the_booker_and_gets_no_second_email(
    booker, free_event
):
    booking = book(
        booker,
        free_event,
        seats=2,
        attendees=[{"name": "Alice R.", "email": "ALICE@example.com"}, FRIENDS[0]],
    )
    run_tasks()

    assert sorted(message.to[0] for message in mail.outbox) == [
        "alice@example.com",
        "bob@example.com",
        "maya@example.com",
    ]
    (summary,) = sent_to("alice@example.com")
    assert "1. Alice R. (you)\n2. Bob Stone (their own invite: bob@example.com)" in summary.body
    guests = BookingEmail.objects.filter(booking=booking, recipient_kind="guest")
    assert list(guests.values_list("to_email", flat=True)) == ["bob@example.com"]


def test_a_guest_seat_with_the_bookers_address_gets_no_separate_email(booker, paid_event):
    """A row the booking path would mark the booker's: the rule holds on its own."""
    booking = book(booker, paid_event, seats=2, attendees=[FRIENDS[0]])
    Attendee.objects.filter(booking=booking, name="Bob Stone").update(email="Alice@Example.COM")

    services.mark_paid(booking_id=booking.pk)
    run_tasks()

    (summary,) = sent_to("alice@example.com")
    assert "2. Bob Stone\n" in summary.body  # no invite of their own
    assert sent_to("Alice@Example.COM") == []
    assert len(mail.outbox) == 2  # the booker and the facilitator


# --- one seat cancelled ---------------------------------------------------------------------


def test_cancelling_one_guests_seat_cancels_their_invite_and_tells_the_booker(
    booker, host, free_event
):
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    bob = seat_of(booking, "Bob Stone")
    run_tasks()
    (bob_confirmation,) = sent_to("bob@example.com")
    mail.outbox.clear()

    cancel_seat(booker, booking, bob)
    run_tasks()

    (to_bob,) = sent_to("bob@example.com")
    assert to_bob.subject == "Ahoum: Your seat at Morning Yoga is cancelled"
    for body in (to_bob.body, html_of(to_bob)):
        assert "The seat Alice Rivera booked for you at this session is cancelled." in body
    method, cancelled = vevent_of(to_bob)
    _, requested = vevent_of(bob_confirmation)
    assert method == "CANCEL"
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["UID"]) == str(requested["UID"]) == f"attendee-{bob.pk}@{HOST}"
    assert cancelled["SEQUENCE"] > requested["SEQUENCE"]

    (summary,) = sent_to("alice@example.com")
    assert summary.subject == "Ahoum: A seat of your booking for Morning Yoga is cancelled"
    for body in (summary.body, html_of(summary)):
        assert "The seat of Bob Stone is cancelled and has been released." in body
        assert "Your booking keeps 2 seats." in body
        assert "Bob Stone has been sent the cancellation of their calendar invite." in body
        assert "refund" not in body  # free
    assert "Seats:\n1. Alice Rivera (you)\n2. Carol Diaz (their own invite" in summary.body
    assert invite_of(summary) is None  # the booker's entry stays: the booking goes on

    assert sent_to("carol@example.com") == []
    assert sent_to("maya@example.com") == []
    assert len(mail.outbox) == 2
    rows = BookingEmail.objects.filter(booking=booking, audit_version=2)
    assert sorted(rows.values_list("recipient_kind", "attendee_id", "kind")) == [
        ("attendee", None, "seat_cancelled"),
        ("guest", bob.pk, "cancelled"),
    ]


def test_a_paid_seat_cancelled_tells_the_booker_its_share_is_refunded(booker, paid_event):
    booking = book(booker, paid_event, seats=3, attendees=FRIENDS)
    services.mark_paid(booking_id=booking.pk)
    run_tasks()
    mail.outbox.clear()

    cancel_seat(booker, booking, seat_of(booking, "Carol Diaz"))
    run_tasks()

    (summary,) = sent_to("alice@example.com")
    assert "Your booking keeps 2 seats, 99.00 EUR." in summary.body
    assert "The seat's share, 49.50 EUR, is being refunded to your original payment method" in (
        summary.body
    )
    (to_carol,) = sent_to("carol@example.com")
    assert "refund" not in to_carol.body and "49.50" not in to_carol.body  # the booker's money
    assert vevent_of(to_carol)[0] == "CANCEL"


def test_the_bookers_own_seat_cancelled_tells_only_the_booker(booker, free_event):
    booking = book(booker, free_event, seats=2, attendees=[FRIENDS[0]])
    run_tasks()
    mail.outbox.clear()

    cancel_seat(booker, booking, seat_of(booking, "Alice Rivera"))
    run_tasks()

    (summary,) = mail.outbox
    assert summary.to == ["alice@example.com"]
    assert "The seat of Alice Rivera (yours) is cancelled" in summary.body
    assert "Your booking keeps 1 seat." in summary.body
    assert "1. Bob Stone (their own invite: bob@example.com)" in summary.body


def test_a_holds_seat_cancelled_tells_nobody_and_the_confirmation_lists_the_seats_left(
    booker, paid_event
):
    booking = book(booker, paid_event, seats=3, attendees=FRIENDS)
    cancel_seat(booker, booking, seat_of(booking, "Bob Stone"))
    run_tasks()
    assert mail.outbox == []

    services.mark_paid(booking_id=booking.pk)
    run_tasks()

    (summary,) = sent_to("alice@example.com")
    assert "for 2 seats is confirmed. We received your payment of 99.00 EUR" in summary.body
    assert "Bob Stone" not in summary.body
    assert sent_to("bob@example.com") == []
    assert len(sent_to("carol@example.com")) == 1


def test_emails_sent_late_tell_what_their_transition_did_not_what_happened_since(
    booker, free_event
):
    """The confirmation's attempt ran after a seat was cancelled (the mail server was down)."""
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    carol = seat_of(booking, "Carol Diaz")
    cancel_seat(booker, booking, carol)

    run_tasks()

    by_subject = {message.subject: message for message in sent_to("alice@example.com")}
    confirmation = by_subject["Ahoum: Your booking for Morning Yoga is confirmed"]
    seat_cancelled = by_subject["Ahoum: A seat of your booking for Morning Yoga is cancelled"]
    assert "Your booking for 3 seats is confirmed." in confirmation.body
    assert "3. Carol Diaz" in confirmation.body
    assert "Your booking keeps 2 seats." in seat_cancelled.body
    assert "Carol Diaz (their own" not in seat_cancelled.body.split("Seats:")[1]
    invites = sorted(vevent_of(message) for message in sent_to("carol@example.com"))
    assert [method for method, _ in invites] == ["CANCEL", "REQUEST"]
    (_, cancel), (_, request) = invites
    assert request["SEQUENCE"] < cancel["SEQUENCE"]
    assert "has 3 confirmed seats" in sent_to("maya@example.com")[0].body


# --- the whole booking ends -----------------------------------------------------------------


def test_cancelling_the_whole_booking_cancels_each_guest_left_and_the_booker(booker, free_event):
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    bob, carol = seat_of(booking, "Bob Stone"), seat_of(booking, "Carol Diaz")
    cancel_seat(booker, booking, bob)
    run_tasks()
    mail.outbox.clear()

    response = client_for(booker).post(f"/bookings/{booking.pk}/cancel")
    assert response.status_code == 200
    run_tasks()

    (to_carol,) = sent_to("carol@example.com")
    assert to_carol.subject == "Ahoum: Your seat at Morning Yoga is cancelled"
    assert "Alice Rivera's booking for this session is cancelled, and your seat with it." in (
        to_carol.body
    )
    method, vevent = vevent_of(to_carol)
    assert (method, str(vevent["UID"])) == ("CANCEL", f"attendee-{carol.pk}@{HOST}")

    (to_booker,) = sent_to("alice@example.com")
    assert "Your booking is cancelled and your 2 seats have been released." in to_booker.body
    method, vevent = vevent_of(to_booker)
    assert (method, str(vevent["UID"])) == ("CANCEL", f"booking-{booking.pk}@{HOST}")

    assert sent_to("bob@example.com") == []  # told when his seat went
    assert len(mail.outbox) == 2


def test_a_refund_of_a_confirmed_group_cancels_each_guests_invite(booker, paid_event):
    booking = book(booker, paid_event, seats=3, attendees=FRIENDS)
    services.mark_paid(booking_id=booking.pk)
    run_tasks()
    mail.outbox.clear()

    services.mark_refunded(booking_id=booking.pk, reason="refunded in Stripe (charge.refunded)")
    run_tasks()

    (refund,) = sent_to("alice@example.com")
    assert "We have issued a full refund of 148.50 EUR" in refund.body
    assert "Your booking is cancelled." in refund.body
    for address in ("bob@example.com", "carol@example.com"):
        (message,) = sent_to(address)
        assert message.subject == "Ahoum: Your seat at Sound Bath is cancelled"
        assert "booking for this session has been refunded and cancelled" in message.body
        assert "148.50" not in message.body
        assert vevent_of(message)[0] == "CANCEL"
    assert len(mail.outbox) == 3


def test_a_cancelled_event_tells_each_guest_with_the_reason(booker, host, free_event):
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    cancel_seat(booker, booking, seat_of(booking, "Bob Stone"))
    run_tasks()
    mail.outbox.clear()

    event_cancellation.cancel_event(event=free_event, by=host, reason="The teacher is ill")
    run_tasks()

    (to_carol,) = sent_to("carol@example.com")
    assert to_carol.subject == "Ahoum: Morning Yoga has been cancelled"
    for body in (to_carol.body, html_of(to_carol)):
        assert "Maya Okafor has cancelled this event, and the seat Alice Rivera booked" in body
        assert "The teacher is ill" in body
    assert vevent_of(to_carol)[0] == "CANCEL"
    (to_booker,) = sent_to("alice@example.com")
    assert "The teacher is ill" in to_booker.body
    assert vevent_of(to_booker)[0] == "CANCEL"
    assert sent_to("bob@example.com") == []
    assert len(mail.outbox) == 2


def test_an_expired_group_hold_tells_the_booker_only(booker, paid_event):
    booking = book(booker, paid_event, seats=3, attendees=FRIENDS)

    assert services.expire_hold(
        booking_id=booking.pk, now=booking.hold_expires_at + timedelta(minutes=1)
    )
    run_tasks()

    (expired,) = mail.outbox
    assert expired.to == ["alice@example.com"]
    assert expired.subject == "Ahoum: Your held seats for Sound Bath were released"
    assert "The 3 seats we held for you were released because the booking (148.50 EUR)" in (
        expired.body
    )


# --- the rows -------------------------------------------------------------------------------


def test_queueing_reads_the_same_whatever_the_number_of_guests(host, free_event):
    """One attendee query per change; what grows is one task per email (its first attempt)."""

    def booking_reads(guests: int) -> list[str]:
        attendees = [
            {"name": f"Guest {n}", "email": f"guest{n}-{guests}@example.com"} for n in range(guests)
        ]
        with CaptureQueriesContext(connection) as captured:
            services.book_event(
                user=UserFactory(), event_id=free_event.pk, seats=guests + 1, attendees=attendees
            )
        return [q["sql"] for q in captured if q["sql"].upper().startswith("SELECT")]

    few, many = booking_reads(1), booking_reads(6)

    assert len(few) == len(many)
    assert len([sql for sql in many if 'FROM "bookings_attendee"' in sql]) == 1
    assert BookingEmail.objects.filter(recipient_kind="guest").count() == 7


def test_one_row_per_transition_and_guest(booker, free_event):
    booking = book(booker, free_event, seats=2, attendees=[FRIENDS[0]])
    bob = seat_of(booking, "Bob Stone")

    with pytest.raises(IntegrityError), transaction.atomic():
        BookingEmail.objects.create(
            booking=booking,
            audit_version=1,
            recipient_kind="guest",
            attendee=bob,
            kind="confirmed",
            to_email=bob.email,
        )
    assert BookingEmail.objects.filter(booking=booking).count() == 3


def test_a_transition_task_from_before_the_rows_moved_writes_the_guests_rows_once(
    booker, free_event
):
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    BookingEmail.objects.all().delete()
    tasks.send_transition_emails.enqueue(booking.pk, 1)
    tasks.send_transition_emails.enqueue(booking.pk, 1)

    run_tasks()

    assert BookingEmail.objects.filter(booking=booking).count() == 4
    for address in ("alice@example.com", "bob@example.com", "carol@example.com"):
        assert len(sent_to(address)) == 1


def test_the_calendar_endpoint_serves_the_bookers_invite_of_a_group(booker, free_event):
    booking = book(booker, free_event, seats=3, attendees=FRIENDS)
    run_tasks()
    (summary,) = sent_to("alice@example.com")

    response = client_for(booker).get(f"/bookings/{booking.pk}/calendar.ics")

    assert response.content == invite_bytes(summary)
    (vevent,) = Calendar.from_ical(response.content).walk("VEVENT")
    assert str(vevent["UID"]) == f"booking-{booking.pk}@{HOST}"
