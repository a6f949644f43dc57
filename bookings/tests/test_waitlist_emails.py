"""Waitlist emails: joined (with the place), seats offered, offer expired or event cancelled.

Driven through the real waitlist service and the real worker (`run_tasks`): an event sold out,
people join its waitlist, a booking is cancelled, and the task that offers the freed seat runs.
Sent mail lands in `django.core.mail.outbox` (Django's test email backend).
"""

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts.tests.factories import FacilitatorFactory, UserFactory
from ahoum import attempts
from ahoum.attempts import AttemptStatus
from bookings import notifications, services, tasks
from bookings.models import WaitlistEmail, WaitlistEntry, WaitlistStatus
from bookings.services import event_cancellation, waitlist
from conftest import client_for, run_tasks, run_tasks_until
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

# A Thursday morning in winter: Berlin is on CET (UTC+1).
NOW = datetime(2030, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _offers_last_twelve_hours(settings):
    settings.WAITLIST_OFFER_MINUTES = 12 * 60
    settings.WAITLIST_SKIP_LARGER = False


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def host():
    return FacilitatorFactory(name="Maya Okafor", email="maya@example.com")


@pytest.fixture
def waiter():
    return UserFactory(name="Wanda Li", email="wanda@example.com")


def sold_out_event(host, *, price: str, capacity: int = 1, seats: int = 1, **fields):
    """An event whose seats one booking holds; that booking."""
    event = EventFactory(
        facilitator=host,
        price=Decimal(price),
        currency="EUR",
        capacity=capacity,
        starts_at=datetime(2030, 1, 20, 18, 0, tzinfo=UTC),
        ends_at=datetime(2030, 1, 20, 20, 0, tzinfo=UTC),
        timezone="Europe/Berlin",
        **fields,
    )
    booking = services.book_event(user=UserFactory(), event_id=event.pk, seats=seats)
    return event, booking


def free_a_seat(booking) -> None:
    """The booking is cancelled and the worker runs: the freed seats are offered."""
    services.cancel_booking(booking=booking, by=booking.user)
    run_tasks()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sent_to(address: str) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.to == [address]]


def html_of(message) -> str:
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    return html


# --- seats offered ----------------------------------------------------------------------------


def test_offer_email_tells_the_seats_event_expiry_and_how_to_accept_and_checkout_once(
    at_now, host, waiter
):
    event, booking = sold_out_event(host, price="49.50", capacity=2, seats=2, title="Sound Bath")
    entry = waitlist.join(user=waiter, event_id=event.pk, seats=2)
    run_tasks()
    mail.outbox.clear()  # the joined email; tested below

    free_a_seat(booking)
    run_tasks()  # the worker again: nothing is sent twice

    entry.refresh_from_db()
    assert entry.status == WaitlistStatus.OFFERED
    assert entry.offer_expires_at == NOW + timedelta(hours=12)
    (offer,) = sent_to("wanda@example.com")
    assert offer.subject == "Ahoum: Seats are waiting for you at Sound Bath"
    assert offer.extra_headers["Auto-Submitted"] == "auto-generated"
    assert offer.extra_headers["Message-ID"].startswith("<waitlist-email-")
    entry_url = f"http://127.0.0.1:8000/waitlist/{entry.pk}"
    for body in (offer.body, html_of(offer)):
        assert "Hello Wanda Li" in body
        assert "2 seats have been freed" in body
        # The event's time and the offer's end, in the event's own zone.
        assert "Sunday 20 January 2030, 19:00 to 21:00 CET (Europe/Berlin)" in body
        assert "Thursday 10 January 2030, 22:00 CET (Europe/Berlin)" in body
        assert entry_url in body
        assert f"POST {entry_url}/accept" in body
        assert "Stripe Checkout to pay 99.00 EUR (2 seats at 49.50 EUR)" in body
        assert f"POST {entry_url}/decline" in body
        assert "Maya Okafor" in body
    assert "held for you until Thursday 10 January 2030, 22:00 CET" in offer.body
    email = WaitlistEmail.objects.get(entry=entry, kind="offered")
    assert (email.status, email.attempts, email.entry_version) == (
        AttemptStatus.SUCCEEDED,
        1,
        entry.version,
    )

    # A duplicate task (a retry, the sweep) finds the attempt made and sends nothing.
    tasks.send_waitlist_email.enqueue(email.pk, 0)
    tasks.send_waitlist_email.enqueue(email.pk, 1)
    run_tasks()
    assert len(sent_to("wanda@example.com")) == 1


def test_offer_email_for_a_free_event_says_accepting_confirms(at_now, host, waiter):
    event, booking = sold_out_event(host, price="0", title="Morning Yoga")
    waitlist.join(user=waiter, event_id=event.pk)
    free_a_seat(booking)

    offer = next(m for m in sent_to("wanda@example.com") if "waiting for you" in m.subject)
    assert "a seat has been freed and is held for you until" in offer.body
    assert "This session is free: accepting confirms your booking." in offer.body
    assert "Stripe" not in offer.body


def test_the_offer_email_row_is_written_with_the_offer_and_one_per_change(at_now, host, waiter):
    event, booking = sold_out_event(host, price="0")
    entry = waitlist.join(user=waiter, event_id=event.pk)
    services.cancel_booking(booking=booking, by=booking.user)
    waitlist.offer_freed_seats(event_id=event.pk)  # no worker yet: nothing sent

    entry.refresh_from_db()
    assert list(
        WaitlistEmail.objects.filter(entry=entry)
        .order_by("entry_version")
        .values_list("kind", "entry_version", "to_email", "status")
    ) == [
        ("joined", 1, "wanda@example.com", AttemptStatus.PENDING),
        ("offered", 2, "wanda@example.com", AttemptStatus.PENDING),
    ]
    assert entry.version == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        WaitlistEmail.objects.create(entry=entry, entry_version=2, kind="offered", to_email="x@y.z")


# --- the offer ending ---------------------------------------------------------------------------


def test_an_offer_not_taken_in_time_expires_with_an_email(at_now, host, waiter):
    event, booking = sold_out_event(host, price="25.00", title="Breathwork")
    entry = waitlist.join(user=waiter, event_id=event.pk)
    free_a_seat(booking)
    entry.refresh_from_db()
    mail.outbox.clear()

    at_now.move_to(entry.offer_expires_at + timedelta(seconds=1))
    assert waitlist.expire_stale_offers() == 1  # as the scheduler's sweep does
    run_tasks()
    run_tasks()

    entry.refresh_from_db()
    assert (entry.status, entry.reason) == (WaitlistStatus.EXPIRED, "offer not taken in time")
    (expired,) = sent_to("wanda@example.com")
    assert expired.subject == "Ahoum: Your offer for Breathwork expired"
    for body in (expired.body, html_of(expired)):
        assert "Your offer expired" in body
        assert "held for you until Thursday 10 January 2030, 22:00 CET (Europe/Berlin)" in body
        assert "was not taken in time" in body
        assert "Nothing was charged." in body
        assert f"http://127.0.0.1:8000/waitlist/{entry.pk}" in body


def test_a_cancelled_event_tells_those_waiting_and_offered_that_it_was_cancelled(
    at_now, host, waiter
):
    event, booking = sold_out_event(host, price="0", capacity=1, title="Gong Bath")
    offered = waitlist.join(user=waiter, event_id=event.pk)
    still_waiting = waitlist.join(user=UserFactory(email="second@example.com"), event_id=event.pk)
    free_a_seat(booking)
    mail.outbox.clear()

    event_cancellation.cancel_event(event=event, by=host, reason="The studio flooded.")
    run_tasks()

    for entry, address, withdrawn in (
        (offered, "wanda@example.com", True),
        (still_waiting, "second@example.com", False),
    ):
        entry.refresh_from_db()
        assert (entry.status, entry.reason) == (WaitlistStatus.EXPIRED, "event cancelled")
        (told,) = [m for m in sent_to(address) if "waitlist" in m.extra_headers["Message-ID"]]
        assert told.subject == "Ahoum: Gong Bath has been cancelled"
        for body in (told.body, html_of(told)):
            assert "has cancelled this event, so its waitlist has ended" in body
            assert "The studio flooded." in body
            assert ("the seat offered to you is withdrawn" in body) is withdrawn
            assert "Your offer expired" not in body


# --- joining, and the changes that owe no email -------------------------------------------------


def test_joining_confirms_with_the_place_in_line(at_now, host, waiter):
    event, _ = sold_out_event(host, price="0", title="Morning Yoga")
    first = UserFactory(name="First", email="first@example.com")
    assert client_for(first).post(f"/events/{event.pk}/waitlist").status_code == 201
    response = client_for(waiter).post(f"/events/{event.pk}/waitlist", {"seats": 2}, format="json")
    assert response.status_code == 201, response.json()
    assert mail.outbox == []  # never sent inside the request

    run_tasks()

    (joined,) = sent_to("wanda@example.com")
    assert joined.subject == "Ahoum: You are on the waitlist for Morning Yoga"
    entry_url = f"http://127.0.0.1:8000/waitlist/{response.json()['id']}"
    for body in (joined.body, html_of(joined)):
        assert "on the waitlist for 2 seats" in body
        assert "number 2 in line" in body
        assert entry_url in body
    (first_joined,) = sent_to("first@example.com")
    assert "a seat, number 1 in line" in first_joined.body


def test_accepting_declining_and_leaving_owe_no_waitlist_email(at_now, host, waiter):
    event, booking = sold_out_event(host, price="0", capacity=2, seats=2)
    other = UserFactory(email="other@example.com")
    leaver = UserFactory(email="leaver@example.com")
    accepting = waitlist.join(user=waiter, event_id=event.pk)
    declining = waitlist.join(user=other, event_id=event.pk)
    leaving = waitlist.join(user=leaver, event_id=event.pk)
    free_a_seat(booking)  # two seats: offered to the first two

    waitlist.accept(entry=WaitlistEntry.objects.get(pk=accepting.pk), by=waiter)
    waitlist.leave(entry=declining, by=other, declined=True)
    run_tasks()  # the declined seat goes to the last one, who leaves
    waitlist.leave(entry=leaving, by=leaver)
    run_tasks()

    kinds = {
        entry.pk: list(
            WaitlistEmail.objects.filter(entry=entry).order_by("pk").values_list("kind", flat=True)
        )
        for entry in (accepting, declining, leaving)
    }
    assert kinds == {
        accepting.pk: ["joined", "offered"],
        declining.pk: ["joined", "offered"],
        leaving.pk: ["joined", "offered"],
    }
    # The accepted offer's booking sends its own confirmation.
    assert [m.subject for m in sent_to("wanda@example.com")][-1].endswith("is confirmed")


# --- sending through the attempt mechanism ------------------------------------------------------


def test_a_failed_send_is_retried_later_and_the_sweep_covers_waitlist_emails(
    settings, host, waiter, capsys
):
    event, _ = sold_out_event(host, price="0")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 2
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    entry = waitlist.join(user=waiter, event_id=event.pk)

    run_tasks()  # nothing listens there: the connection is refused

    email = WaitlistEmail.objects.get(entry=entry)
    assert (email.status, email.attempts, email.failures) == (AttemptStatus.PENDING, 1, 1)
    assert email.last_error
    with time_machine.travel(email.next_attempt_at + timedelta(minutes=5), tick=False):
        call_command("sweep")
        assert "waitlist emails: 1 overdue re-enqueued" in capsys.readouterr().out
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run_tasks_until(email.next_attempt_at + timedelta(minutes=10))

    email.refresh_from_db()
    assert (email.status, email.attempts) == (AttemptStatus.SUCCEEDED, 2)
    assert len(sent_to("wanda@example.com")) == 1


def test_an_attempt_lost_after_sending_is_never_repeated(monkeypatch, host, waiter):
    """At most once: the worker dies after the mail server took the offer, before `succeeded`."""
    event, _ = sold_out_event(host, price="0")
    entry = waitlist.join(user=waiter, event_id=event.pk)
    email = WaitlistEmail.objects.get(entry=entry)

    def worker_killed(*args, **kwargs):
        raise RuntimeError("worker killed after sending")

    with monkeypatch.context() as patch:
        patch.setattr(attempts, "record_success", worker_killed)
        with pytest.raises(RuntimeError):
            notifications.send_waitlist_email(email_id=email.pk, after_attempts=0)
    email.refresh_from_db()
    assert (email.status, email.attempts) == (AttemptStatus.RUNNING, 1)

    run_tasks_until(email.next_attempt_at + timedelta(seconds=5))  # the lease task takes over

    email.refresh_from_db()
    assert email.status == AttemptStatus.GAVE_UP
    assert "may have happened and is not repeated" in email.last_error
    assert len(sent_to("wanda@example.com")) == 1
