"""Booking emails and calendar invites, driven through the real flows and the real worker.

Django's test environment swaps EMAIL_BACKEND for the in-memory one, so sent mail lands in
`django.core.mail.outbox`; one test uses the file backend, and the retry tests point the real
SMTP backend at a closed port on 127.0.0.1.
"""

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends import locmem
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from icalendar import Calendar

from accounts.tests.factories import FacilitatorFactory, UserFactory
from ahoum import attempts
from ahoum.attempts import AttemptStatus
from bookings import notifications, services, tasks
from bookings.models import Booking, BookingAudit, BookingEmail
from bookings.services import event_cancellation, payments
from conftest import client_for, run_tasks
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def host():
    return FacilitatorFactory(name="Maya Okafor", email="maya@example.com")


@pytest.fixture
def attendee():
    return UserFactory(name="Alice Rivera", email="alice@example.com")


@pytest.fixture
def free_event(host):
    return EventFactory(
        facilitator=host, price=Decimal("0"), title="Morning Yoga", location="Studio 3, Berlin"
    )


@pytest.fixture
def paid_event(host):
    return EventFactory(
        facilitator=host, price=Decimal("49.50"), currency="EUR", title="Sound Bath", capacity=1
    )


def book(user, event) -> Booking:
    response = client_for(user).post("/bookings/", {"event_id": event.pk}, format="json")
    assert response.status_code == 201, response.json()
    return Booking.objects.get(pk=response.json()["id"])


def sent_to(address: str) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.to == [address]]


def html_of(message) -> str:
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    return html


def invite_of(message) -> Calendar | None:
    """The text/calendar attachment of a sent message, parsed; None without one."""
    parts = [part for part in message.attachments if part.get_content_type() == "text/calendar"]
    if not parts:
        return None
    (part,) = parts
    assert part.get_filename() == "invite.ics"
    calendar = Calendar.from_ical(part.get_payload(decode=True))
    assert part.get_param("method") == str(calendar["METHOD"])
    return calendar


def invite_bytes(message) -> bytes:
    (part,) = message.attachments
    return part.get_payload(decode=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mail_server_down(settings):
    """The real SMTP backend, aimed at a port where nothing listens (connection refused)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    return settings


# --- one email per transition ---------------------------------------------------------------


def test_free_booking_confirms_to_the_attendee_with_an_invite_and_tells_the_facilitator(
    attendee, host, free_event
):
    booking = book(attendee, free_event)
    assert mail.outbox == []  # never sent inside the request

    run_tasks()

    (confirmation,) = sent_to("alice@example.com")
    assert confirmation.subject == "Ahoum: Your booking for Morning Yoga is confirmed"
    assert confirmation.from_email == "Ahoum <noreply@ahoum.example>"
    link = f"http://127.0.0.1:8000/bookings/{booking.pk}"
    for body in (confirmation.body, html_of(confirmation)):
        assert "Ahoum" in body
        assert link in body
        assert "Morning Yoga" in body
        assert "Studio 3, Berlin" in body
        assert "Maya Okafor" in body
        assert "This session is free." in body
    assert f"{link}/calendar.ics" in confirmation.body
    assert confirmation.extra_headers["Auto-Submitted"] == "auto-generated"
    invite = invite_of(confirmation)
    assert str(invite["METHOD"]) == "REQUEST"

    (registration,) = sent_to("maya@example.com")
    assert registration.subject == "Ahoum: New registration for Morning Yoga"
    for body in (registration.body, html_of(registration)):
        assert "Alice Rivera (alice@example.com) has a confirmed seat" in body
        assert f"http://127.0.0.1:8000/facilitator/registrations/{free_event.pk}" in body
    assert invite_of(registration) is None

    assert len(mail.outbox) == 2
    rows = BookingEmail.objects.filter(booking=booking)
    assert sorted(rows.values_list("recipient_kind", "kind", "status", "attempts")) == [
        ("attendee", "confirmed", "succeeded", 1),
        ("facilitator", "new_registration", "succeeded", 1),
    ]
    assert all(row.succeeded_at and row.failures == 0 and row.gave_up_at is None for row in rows)

    with time_machine.travel(timezone.now() + timedelta(days=1)):
        run_tasks()  # the attempts' lease tasks find them succeeded
    assert len(mail.outbox) == 2


def test_the_booking_writes_the_rows_addressed_then_and_one_task_for_each(
    attendee, host, free_event
):
    booking = book(attendee, free_event)

    rows = BookingEmail.objects.filter(booking=booking)
    assert sorted(rows.values_list("to_email", "status", "attempts")) == [
        ("alice@example.com", "pending", 0),
        (host.email, "pending", 0),
    ]
    queued = DBTaskResult.objects.filter(task_path="bookings.tasks.send_booking_email")
    assert sorted(task.args_kwargs["args"] for task in queued) == sorted(
        [email.pk, 0] for email in rows
    )

    run_tasks()

    assert len(sent_to("alice@example.com")) == 1 and len(sent_to(host.email)) == 1


def test_a_transition_task_enqueued_before_the_rows_moved_writes_them_once(
    attendee, host, free_event
):
    """`send_transition_emails` tasks from before the rows were written with the change."""
    booking = book(attendee, free_event)
    BookingEmail.objects.all().delete()
    DBTaskResult.objects.all().delete()
    tasks.send_transition_emails.enqueue(booking.pk, 1)
    tasks.send_transition_emails.enqueue(booking.pk, 1)

    run_tasks()

    assert BookingEmail.objects.filter(booking=booking).count() == 2
    assert len(sent_to(attendee.email)) == 1 and len(sent_to(host.email)) == 1


def test_a_transition_task_for_a_deleted_booking_does_nothing(attendee, free_event):
    booking = book(attendee, free_event)
    booking.delete()

    run_tasks()

    assert mail.outbox == []
    assert not BookingEmail.objects.exists()


def test_paid_booking_is_confirmed_by_email_when_the_payment_arrives(attendee, host, paid_event):
    booking = book(attendee, paid_event)
    run_tasks()
    assert mail.outbox == []  # a hold waiting for payment is not confirmed yet

    services.mark_paid(booking_id=booking.pk, reason="paid by bank transfer")
    services.mark_paid(booking_id=booking.pk)  # a replay: no change, no email
    run_tasks()

    (confirmation,) = sent_to("alice@example.com")
    assert confirmation.subject == "Ahoum: Your booking for Sound Bath is confirmed"
    assert "We received your payment of 49.50 EUR." in confirmation.body
    invite = invite_of(confirmation)
    (vevent,) = invite.walk("VEVENT")
    assert vevent["SEQUENCE"] == 2  # the booking's version at `booking.paid`
    assert str(vevent["STATUS"]) == "CONFIRMED"
    (registration,) = sent_to("maya@example.com")
    assert "has a confirmed seat at your event and paid 49.50 EUR." in registration.body
    assert len(mail.outbox) == 2


def test_cancelling_a_confirmed_booking_emails_a_cancel_for_the_same_invite(attendee, free_event):
    booking = book(attendee, free_event)
    run_tasks()
    (confirmation,) = sent_to("alice@example.com")

    response = client_for(attendee).post(f"/bookings/{booking.pk}/cancel")
    assert response.status_code == 200
    run_tasks()

    earlier, cancellation = sent_to("alice@example.com")
    assert earlier is confirmation
    assert cancellation.subject == "Ahoum: Your booking for Morning Yoga is cancelled"
    assert "Your booking is cancelled and your seat has been released." in cancellation.body
    assert "refund" not in cancellation.body
    assert f"http://127.0.0.1:8000/bookings/{booking.pk}" in html_of(cancellation)
    (requested,) = invite_of(confirmation).walk("VEVENT")
    cancel = invite_of(cancellation)
    (cancelled,) = cancel.walk("VEVENT")
    assert str(cancel["METHOD"]) == "CANCEL"
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["UID"]) == str(requested["UID"]) == f"booking-{booking.pk}@127.0.0.1"
    assert cancelled["SEQUENCE"] > requested["SEQUENCE"]
    assert len(sent_to("maya@example.com")) == 1  # only the registration


def test_paid_cancellation_then_refund_send_one_email_each(attendee, paid_event):
    booking = book(attendee, paid_event)
    services.mark_paid(booking_id=booking.pk)
    run_tasks()
    mail.outbox.clear()

    services.cancel_booking(booking=booking, by=attendee)
    run_tasks()
    services.mark_refunded(booking_id=booking.pk, reason="refunded by hand")
    services.mark_refunded(booking_id=booking.pk)  # Stripe's later charge.refunded: no change
    run_tasks()

    cancellation, refund = sent_to("alice@example.com")
    assert "A full refund of 49.50 EUR is on its way" in cancellation.body
    assert str(invite_of(cancellation)["METHOD"]) == "CANCEL"
    assert refund.subject == "Ahoum: Your refund for Sound Bath has been issued"
    for body in (refund.body, html_of(refund)):
        assert "We have issued a full refund of 49.50 EUR" in body
        assert "Your booking is cancelled." not in body  # it was already
    assert invite_of(refund) is None  # the cancellation carried the CANCEL
    assert len(mail.outbox) == 2


def test_refund_of_an_active_booking_says_it_is_cancelled_and_cancels_the_invite(
    attendee, paid_event
):
    booking = book(attendee, paid_event)
    services.mark_paid(booking_id=booking.pk)
    run_tasks()
    mail.outbox.clear()

    services.mark_refunded(booking_id=booking.pk, reason="refunded in Stripe (charge.refunded)")
    run_tasks()

    (refund,) = mail.outbox
    assert refund.to == ["alice@example.com"]
    assert "We have issued a full refund of 49.50 EUR" in refund.body
    assert "Your booking is cancelled." in refund.body
    assert str(invite_of(refund)["METHOD"]) == "CANCEL"


def test_event_cancelled_by_the_facilitator_emails_each_attendee_with_the_reason(stripe_on, host):
    event = EventFactory(facilitator=host, price=Decimal("35.00"), title="Breathwork", capacity=5)
    paid_attendee, holding_attendee = UserFactory(), UserFactory()
    paid = payments.book_with_checkout(user=paid_attendee, event_id=event.pk)
    session = stripe_on.pay_session(paid.checkout_session_id)
    services.record_checkout_payment(
        booking_id=paid.pk,
        session_id=paid.checkout_session_id,
        payment_intent_id=session["payment_intent"],
        paid_at=timezone.now(),
    )
    holding = services.book_event(user=holding_attendee, event_id=event.pk)
    run_tasks()
    mail.outbox.clear()

    event_cancellation.cancel_event(event=event, by=host, reason="The teacher is ill")
    run_tasks()

    # The paid attendee: told about the cancellation, then about the refund Stripe made.
    cancelled, refunded = sent_to(paid_attendee.email)
    assert cancelled.subject == "Ahoum: Breathwork has been cancelled"
    for body in (cancelled.body, html_of(cancelled)):
        assert "Maya Okafor has cancelled this event" in body
        assert "The teacher is ill" in body
        assert "A full refund of 35.00 EUR is on its way" in body
    assert str(invite_of(cancelled)["METHOD"]) == "CANCEL"
    assert "We have issued a full refund of 35.00 EUR" in refunded.body
    # The unpaid hold: told, nothing about money, no invite to cancel.
    (told,) = sent_to(holding_attendee.email)
    assert "The teacher is ill" in told.body
    assert "refund" not in told.body
    assert invite_of(told) is None
    assert Booking.objects.get(pk=holding.pk).status == "cancelled"
    assert sent_to(host.email) == []  # a new registration is all facilitators hear about
    assert len(mail.outbox) == 3


def test_hold_expired_without_payment_is_emailed_once(attendee, paid_event):
    booking = book(attendee, paid_event)

    with time_machine.travel(booking.hold_expires_at + timedelta(minutes=1)):
        assert services.expire_stale_holds() == 1
        run_tasks()  # the hold's own expiry task runs too, and finds it expired

    (expired,) = mail.outbox
    assert expired.to == ["alice@example.com"]
    assert expired.subject == "Ahoum: Your held seat for Sound Bath was released"
    assert "was not paid. Nothing was charged." in expired.body
    assert f"http://127.0.0.1:8000/bookings/{booking.pk}" in expired.body
    assert invite_of(expired) is None


def test_payment_after_the_seat_was_gone_sends_no_confirmation_only_the_refund(
    attendee, paid_event
):
    booking = book(attendee, paid_event)
    with time_machine.travel(booking.hold_expires_at + timedelta(minutes=1)):
        book(UserFactory(), paid_event)  # takes the only seat: the lapsed hold is released
        late = services.mark_paid(booking_id=booking.pk)
        assert (late.status, late.payment_status) == ("expired", "paid")
        services.mark_refunded(booking_id=booking.pk)
        run_tasks()

    released, refund = sent_to("alice@example.com")
    assert released.subject == "Ahoum: Your held seat for Sound Bath was released"
    assert "We have issued a full refund of 49.50 EUR" in refund.body
    assert "Your booking is cancelled." not in refund.body
    assert sent_to("maya@example.com") == []


# --- the calendar invite --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "month", "utc_hour", "local_hour"),
    [
        ("Europe/Berlin", 1, 17, 18),  # CET, UTC+1
        ("America/New_York", 7, 22, 18),  # EDT, UTC-4
        ("Asia/Kolkata", 3, 12, 17),  # IST, UTC+5:30 (local 17:30)
    ],
)
def test_invite_has_the_event_times_in_utc_and_in_its_time_zone(
    attendee, host, zone, month, utc_hour, local_hour
):
    starts_at = datetime(timezone.now().year + 1, month, 15, utc_hour, tzinfo=UTC)
    event = EventFactory(
        facilitator=host,
        price=Decimal("0"),
        title="Sunset Meditation",
        location="Rooftop, 5 Main St",
        timezone=zone,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=90),
    )
    booking = book(attendee, event)
    run_tasks()

    (confirmation,) = sent_to("alice@example.com")
    calendar = invite_of(confirmation)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar["VERSION"]) == "2.0"
    (vevent,) = calendar.walk("VEVENT")
    start, end = vevent["DTSTART"].dt, vevent["DTEND"].dt
    assert vevent["DTSTART"].params["TZID"] == zone
    assert start.tzinfo == ZoneInfo(zone)
    assert start.hour == local_hour
    assert start.astimezone(UTC) == starts_at
    assert end.astimezone(UTC) == starts_at + timedelta(minutes=90)
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == [zone]
    assert str(vevent["UID"]) == f"booking-{booking.pk}@127.0.0.1"
    assert vevent["SEQUENCE"] == 1
    assert str(vevent["SUMMARY"]) == "Sunset Meditation"
    assert str(vevent["LOCATION"]) == "Rooftop, 5 Main St"
    assert str(vevent["ORGANIZER"]) == "mailto:maya@example.com"
    assert vevent["ORGANIZER"].params["CN"] == "Maya Okafor"
    assert str(vevent["ATTENDEE"]) == "mailto:alice@example.com"
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert str(vevent["STATUS"]) == "CONFIRMED"
    assert str(vevent["URL"]) == f"http://127.0.0.1:8000/bookings/{booking.pk}"
    assert vevent["DTSTAMP"].dt.utcoffset() == timedelta(0)
    # The same moment, in words, in the email.
    local = starts_at.astimezone(ZoneInfo(zone))
    assert f"{local:%H:%M} to " in confirmation.body
    assert f"({zone})" in confirmation.body


def test_file_backend_writes_text_html_and_the_invite(settings, tmp_path, attendee, free_event):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    booking = book(attendee, free_event)

    run_tasks()

    messages = [
        message_from_bytes(path.read_bytes().rsplit(b"\n" + b"-" * 79, 1)[0], policy=policy.default)
        for path in tmp_path.iterdir()
    ]
    (confirmation,) = [m for m in messages if m["To"] == "alice@example.com"]
    assert confirmation["Subject"] == "Ahoum: Your booking for Morning Yoga is confirmed"
    assert confirmation["Message-ID"].endswith("@127.0.0.1>")
    assert confirmation.get_body(("plain",)).get_content().startswith("Hello Alice Rivera,")
    assert "<a href=" in confirmation.get_body(("html",)).get_content()
    (attachment,) = confirmation.iter_attachments()
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_filename() == "invite.ics"
    (vevent,) = Calendar.from_ical(attachment.get_content()).walk("VEVENT")
    assert str(vevent["UID"]) == f"booking-{booking.pk}@127.0.0.1"


# --- GET /bookings/{id}/calendar.ics --------------------------------------------------------


def test_calendar_endpoint_returns_the_invite_the_confirmation_carried(attendee, free_event):
    booking = book(attendee, free_event)
    run_tasks()
    (confirmation,) = sent_to("alice@example.com")

    for path in (f"/bookings/{booking.pk}/calendar.ics", f"/bookings/{booking.pk}/calendar.ics/"):
        response = client_for(attendee).get(path, HTTP_ACCEPT="text/calendar")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/calendar; charset=utf-8"
        assert response.content == invite_bytes(confirmation)


def test_calendar_endpoint_cancels_the_entry_once_the_booking_is_cancelled(attendee, free_event):
    booking = book(attendee, free_event)
    services.cancel_booking(booking=booking, by=attendee)

    response = client_for(attendee).get(f"/bookings/{booking.pk}/calendar.ics")

    calendar = Calendar.from_ical(response.content)
    assert str(calendar["METHOD"]) == "CANCEL"
    (vevent,) = calendar.walk("VEVENT")
    assert (str(vevent["STATUS"]), vevent["SEQUENCE"]) == ("CANCELLED", 2)


def test_calendar_endpoint_marks_an_unpaid_hold_tentative(attendee, paid_event):
    booking = book(attendee, paid_event)

    response = client_for(attendee).get(f"/bookings/{booking.pk}/calendar.ics")

    (vevent,) = Calendar.from_ical(response.content).walk("VEVENT")
    assert str(vevent["STATUS"]) == "TENTATIVE"


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("other user", 404), ("facilitator", 404), ("staff", 404), ("owner", 200)],
)
@pytest.mark.parametrize("accept", ["*/*", "text/calendar"])
def test_calendar_endpoint_permissions(api_client, attendee, host, free_event, who, status, accept):
    booking = book(attendee, free_event)
    clients = {
        "anonymous": api_client,
        "other user": client_for(UserFactory()),
        "facilitator": client_for(host),
        "staff": client_for(UserFactory(is_staff=True)),
        "owner": client_for(attendee),
    }

    response = clients[who].get(f"/bookings/{booking.pk}/calendar.ics", HTTP_ACCEPT=accept)

    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"] == "text/calendar; charset=utf-8"
    else:  # the usual JSON error, even when only text/calendar was asked for
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"code", "detail"}
        if status == 401:
            assert response.json()["code"] == "not_authenticated"


# --- retries and never twice ----------------------------------------------------------------


def run_every_task_left_a_day_later(email_ids) -> None:
    """Every task an email could still meet: duplicates of each attempt's task, the sweep's
    (`manage.py sweep`), and the lease and retry tasks left, run a day later."""
    for email in BookingEmail.objects.filter(pk__in=email_ids):
        for after_attempts in range(email.attempts + 1):
            tasks.send_booking_email.enqueue(email.pk, after_attempts)
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        attempts.sweep_overdue(BookingEmail, notifications.POLICY, grace=timedelta(0))
        run_tasks()


def assert_given_up_after_a_lost_attempt(email: BookingEmail) -> None:
    """The at-most-once end of an attempt whose outcome nobody recorded."""
    email.refresh_from_db()
    assert (email.status, email.attempts, email.failures) == (AttemptStatus.GAVE_UP, 1, 0)
    assert "attempt 1 never finished" in email.last_error
    assert "may have happened and is not repeated" in email.last_error
    assert email.gave_up_at is not None
    assert email.next_attempt_at is None
    assert email.succeeded_at is None


def test_mail_server_down_is_retried_with_backoff_and_delivered_once(
    mail_server_down, attendee, free_event
):
    booking = book(attendee, free_event)

    run_tasks()

    assert mail.outbox == []
    emails = list(BookingEmail.objects.filter(booking=booking))
    assert len(emails) == 2
    for email in emails:
        assert (email.status, email.attempts, email.failures) == (AttemptStatus.PENDING, 1, 1)
        assert "ConnectionRefusedError" in email.last_error
        delay = (email.next_attempt_at - email.last_attempt_at).total_seconds()
        assert 48 <= delay <= 72  # EMAIL_RETRY_BASE_SECONDS, with ±20% jitter
    run_tasks()  # not due yet: nothing happens
    assert BookingEmail.objects.filter(attempts=1).count() == 2

    mail_server_down.EMAIL_BACKEND = LOCMEM  # the server is back
    retry_at = max(email.next_attempt_at for email in emails)
    with time_machine.travel(retry_at + timedelta(seconds=1)):
        run_tasks()
    with time_machine.travel(retry_at + timedelta(days=1)):
        run_tasks()  # every lease and retry task left finds the emails succeeded

    assert len(sent_to("alice@example.com")) == 1
    assert len(sent_to("maya@example.com")) == 1
    assert sorted(BookingEmail.objects.values_list("status", "attempts", "failures")) == [
        ("succeeded", 2, 1),
        ("succeeded", 2, 1),
    ]
    assert not BookingEmail.objects.exclude(last_error="").exists()


def test_gives_up_after_email_max_attempts(mail_server_down, attendee, free_event):
    mail_server_down.EMAIL_MAX_ATTEMPTS = 3
    book(attendee, free_event)
    run_tasks()

    delays = []
    for _ in range(5):
        email = BookingEmail.objects.get(recipient_kind="attendee")
        if email.next_attempt_at is None:
            break
        delays.append((email.next_attempt_at - email.last_attempt_at).total_seconds())
        with time_machine.travel(email.next_attempt_at + timedelta(seconds=1)):
            run_tasks()

    email.refresh_from_db()
    assert (email.status, email.attempts, email.failures) == (AttemptStatus.GAVE_UP, 3, 3)
    assert "ConnectionRefusedError" in email.last_error
    assert email.gave_up_at is not None
    assert 48 <= delays[0] <= 72 and 96 <= delays[1] <= 144  # doubling, ±20%
    assert mail.outbox == []


def test_a_send_that_raises_is_retried_and_succeeds_with_exactly_one_message(
    monkeypatch, attendee, free_event
):
    booking = book(attendee, free_event)
    deliver = locmem.EmailBackend.send_messages
    calls = []

    def fails_the_first_time(self, messages):
        calls.append(messages)
        if len(calls) == 1:
            raise OSError("the mail API answered 503")
        return deliver(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", fails_the_first_time)
    email = BookingEmail.objects.get(booking=booking, recipient_kind="attendee")
    assert notifications.send_email(email_id=email.pk, after_attempts=0) == "pending"

    email.refresh_from_db()
    assert (email.status, email.attempts, email.failures) == (AttemptStatus.PENDING, 1, 1)
    assert email.last_error == "OSError: the mail API answered 503"
    assert sent_to("alice@example.com") == []
    with time_machine.travel(email.next_attempt_at + timedelta(seconds=1)):
        run_tasks()  # the retry task (and the transition task: the facilitator's email)
    run_every_task_left_a_day_later([email.pk])

    email.refresh_from_db()
    assert (email.status, email.attempts, email.failures) == (AttemptStatus.SUCCEEDED, 2, 1)
    assert email.last_error == ""
    assert email.succeeded_at is not None and email.gave_up_at is None
    assert len(sent_to("alice@example.com")) == 1
    assert len(sent_to("maya@example.com")) == 1


def test_a_send_that_keeps_raising_gives_up_after_email_max_attempts_failures(
    settings, monkeypatch, attendee, free_event
):
    settings.EMAIL_MAX_ATTEMPTS = 3
    book(attendee, free_event)

    def refused(self, messages):
        raise OSError("the mail API answered 503")

    with monkeypatch.context() as patch:
        patch.setattr(locmem.EmailBackend, "send_messages", refused)
        run_tasks()
        for _ in range(5):
            due = BookingEmail.objects.filter(status=AttemptStatus.PENDING)
            if not due.exists():
                break
            latest = max(email.next_attempt_at for email in due)
            with time_machine.travel(latest + timedelta(seconds=1)):
                run_tasks()

    emails = list(BookingEmail.objects.all())
    assert len(emails) == 2
    for email in emails:
        assert (email.status, email.attempts, email.failures) == (AttemptStatus.GAVE_UP, 3, 3)
        assert email.last_error == "OSError: the mail API answered 503"
        assert email.gave_up_at is not None and email.next_attempt_at is None
    run_every_task_left_a_day_later([email.pk for email in emails])  # the backend works again
    assert mail.outbox == []
    assert BookingEmail.objects.filter(status=AttemptStatus.GAVE_UP, attempts=3).count() == 2


def test_a_worker_dying_right_after_the_claim_gives_the_email_up_unsent_after_its_lease(
    attendee, free_event
):
    """The claim committed, then the process died: nothing was sent, nothing recorded."""
    booking = book(attendee, free_event)
    email = BookingEmail.objects.get(booking=booking, recipient_kind="attendee")

    claimed = attempts.claim(BookingEmail, email.pk, after_attempts=0, policy=notifications.POLICY)
    assert (claimed.status, claimed.attempts) == (AttemptStatus.RUNNING, 1)
    # The process dies here.

    run_tasks()  # the transition task: the attendee's attempt is made and within its lease
    email.refresh_from_db()
    assert (email.status, email.attempts) == (AttemptStatus.RUNNING, 1)
    assert sent_to("alice@example.com") == []
    with time_machine.travel(email.next_attempt_at + timedelta(seconds=1)):
        run_tasks()  # the lease task: no outcome recorded, so the email gives up

    assert_given_up_after_a_lost_attempt(email)
    run_every_task_left_a_day_later([email.pk])
    assert_given_up_after_a_lost_attempt(email)
    assert sent_to("alice@example.com") == []
    assert len(sent_to("maya@example.com")) == 1  # the other email went normally
    assert len(mail.outbox) == 1


def test_a_worker_dying_during_the_send_gives_the_emails_up_after_their_lease_never_resent(
    monkeypatch, attendee, free_event
):
    """The process died inside the backend (SystemExit is no `Exception`: nothing catches it)."""
    book(attendee, free_event)

    def killed_while_sending(self, messages):
        raise SystemExit("worker killed while sending")

    with monkeypatch.context() as patch:
        patch.setattr(locmem.EmailBackend, "send_messages", killed_while_sending)
        with pytest.raises(AssertionError, match="worker killed while sending"):
            run_tasks()

    assert mail.outbox == []
    failed = DBTaskResult.objects.filter(
        task_path="bookings.tasks.send_booking_email", status="FAILED"
    )
    assert failed.count() == 2  # both emails' first attempts
    emails = list(BookingEmail.objects.all())
    assert [(e.status, e.attempts, e.failures) for e in emails] == [
        (AttemptStatus.RUNNING, 1, 0)
    ] * 2
    with time_machine.travel(max(e.next_attempt_at for e in emails) + timedelta(seconds=1)):
        run_tasks()  # the lease tasks

    for email in emails:
        assert_given_up_after_a_lost_attempt(email)
    run_every_task_left_a_day_later([email.pk for email in emails])
    for email in emails:
        assert_given_up_after_a_lost_attempt(email)
    assert mail.outbox == []


def test_a_worker_dying_after_the_send_before_recording_it_gives_up_with_one_message(
    monkeypatch, attendee, free_event
):
    """The crash window: the message reached the server, the process died before `succeeded`
    was recorded. At most once: the email gives up after its lease and is never resent."""
    book(attendee, free_event)

    def killed_after_sending(*args, **kwargs):
        assert len(mail.outbox) >= 1  # the message got through first
        raise SystemExit("worker killed after sending")

    with monkeypatch.context() as patch:
        patch.setattr(attempts, "record_success", killed_after_sending)
        with pytest.raises(AssertionError, match="worker killed after sending"):
            run_tasks()

    assert len(sent_to("alice@example.com")) == 1
    assert len(sent_to("maya@example.com")) == 1
    emails = list(BookingEmail.objects.all())
    assert [(e.status, e.attempts, e.failures) for e in emails] == [
        (AttemptStatus.RUNNING, 1, 0)
    ] * 2
    with time_machine.travel(max(e.next_attempt_at for e in emails) + timedelta(seconds=1)):
        run_tasks()  # the lease tasks

    for email in emails:
        assert_given_up_after_a_lost_attempt(email)
    run_every_task_left_a_day_later([email.pk for email in emails])
    for email in emails:
        assert_given_up_after_a_lost_attempt(email)
    assert len(sent_to("alice@example.com")) == 1
    assert len(sent_to("maya@example.com")) == 1
    assert len(mail.outbox) == 2


def test_a_worker_dying_after_the_send_never_causes_a_second_email(
    monkeypatch, attendee, free_event
):
    """The crash window: the server accepted the message, `succeeded` was never recorded."""
    booking = book(attendee, free_event)
    # The attendee's attempt dies after the send.
    email = BookingEmail.objects.get(booking=booking, recipient_kind="attendee")

    def worker_killed(*args, **kwargs):
        raise RuntimeError("worker killed after sending")

    with monkeypatch.context() as patch:
        patch.setattr(attempts, "record_success", worker_killed)
        with pytest.raises(RuntimeError):
            notifications.send_email(email_id=email.pk, after_attempts=0)
    assert len(sent_to("alice@example.com")) == 1
    email.refresh_from_db()
    assert (email.status, email.attempts) == (AttemptStatus.RUNNING, 1)

    run_tasks()  # the task queued with the booking finds the rows there and attempt 1 made
    tasks.send_booking_email.enqueue(email.pk, 0)  # a duplicate task, as a retry would be
    run_tasks()
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        run_tasks()  # the lease ends with no outcome: given up, not resent

    assert_given_up_after_a_lost_attempt(email)
    assert len(sent_to("alice@example.com")) == 1
    assert len(sent_to("maya@example.com")) == 1  # the other email went normally


def test_a_worker_dying_while_sending_one_email_leaves_the_other_to_its_own_task(
    monkeypatch, attendee, host, free_event
):
    book(attendee, free_event)
    record_success = attempts.record_success

    def killed_after_the_attendees_email(model, pk, **fields):
        if model is BookingEmail and BookingEmail.objects.get(pk=pk).recipient_kind == "attendee":
            raise RuntimeError("worker killed after sending")
        return record_success(model, pk, **fields)

    monkeypatch.setattr(attempts, "record_success", killed_after_the_attendees_email)
    with pytest.raises(AssertionError, match="worker killed"):
        run_tasks()

    assert len(sent_to("alice@example.com")) == 1
    assert len(sent_to("maya@example.com")) == 1
    facilitator_email = BookingEmail.objects.get(recipient_kind="facilitator")
    assert facilitator_email.status == AttemptStatus.SUCCEEDED


def test_a_send_that_outlasts_its_lease_is_recorded_succeeded_when_it_returns(
    monkeypatch, attendee, free_event
):
    """The lease task gave the email up while the send was still running; the send then
    returned: the outcome is known, and it is the truth. Sent once, never resent."""
    booking = book(attendee, free_event)
    email = BookingEmail.objects.get(booking=booking, recipient_kind="attendee")
    deliver = locmem.EmailBackend.send_messages

    def slower_than_the_lease(self, messages):
        claimed = BookingEmail.objects.get(pk=email.pk)
        with time_machine.travel(claimed.next_attempt_at + timedelta(seconds=1)):
            # The lease task, meanwhile in another worker.
            assert notifications.send_email(email_id=email.pk, after_attempts=1) == "gave_up"
        return deliver(self, messages)

    with monkeypatch.context() as patch:
        patch.setattr(locmem.EmailBackend, "send_messages", slower_than_the_lease)
        assert notifications.send_email(email_id=email.pk, after_attempts=0) == "succeeded"

    email.refresh_from_db()
    assert (email.status, email.attempts, email.failures) == (AttemptStatus.SUCCEEDED, 1, 0)
    assert email.last_error == "" and email.succeeded_at is not None
    run_every_task_left_a_day_later([email.pk])
    email.refresh_from_db()
    assert email.status == AttemptStatus.SUCCEEDED
    assert len(sent_to("alice@example.com")) == 1


def test_a_sent_email_is_not_sent_again_by_a_repeated_task(attendee, free_event):
    booking = book(attendee, free_event)
    run_tasks()
    email = BookingEmail.objects.get(booking=booking, recipient_kind="attendee")

    for after_attempts in (0, 1):
        tasks.send_booking_email.enqueue(email.pk, after_attempts)
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        run_tasks()

    assert len(sent_to("alice@example.com")) == 1


def test_one_row_per_transition_and_recipient(attendee, free_event):
    booking = book(attendee, free_event)
    audit = BookingAudit.objects.get(booking=booking)

    run_tasks()
    assert len(sent_to(attendee.email)) == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingEmail.objects.create(
            booking=booking,
            audit_version=audit.version,
            recipient_kind="attendee",
            kind="confirmed",
            to_email=attendee.email,
        )
    assert BookingEmail.objects.filter(booking=booking).count() == 2


# --- settings -------------------------------------------------------------------------------


def email_settings(env: dict[str, str]) -> list[str]:
    code = (
        "from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS, "
        "s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.DEFAULT_FROM_EMAIL, sep='|')"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EMAIL_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR,
        env=clean
        | {"DJANGO_SETTINGS_MODULE": "ahoum.settings", "READ_DOT_ENV": "false", "DEBUG": "False"}
        | {
            "SECRET_KEY": "k9!v2Lr@8qZ#x4Tn6Wb$1Hs^3Jd&5Fg*7Mp(0Ye)Rc-Ua_Io+Pl=Ek]Nw[Vz{Qh}",
            "JWT_SECRET_KEY": "another-long-random-value-for-signing-jwts-0123456789",
        }
        | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split("|")


def test_email_backend_is_the_console_in_development_and_smtp_from_email_url_in_production():
    assert email_settings({"DEBUG": "True"})[0] == "django.core.mail.backends.console.EmailBackend"
    production = email_settings(
        {
            "EMAIL_URL": "smtp+tls://apikey:s%40cret@smtp.example.com:2525",
            "DEFAULT_FROM_EMAIL": "Ahoum <bookings@ahoum.example>",
        }
    )
    assert production == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        "2525",
        "True",
        "apikey",
        "s@cret",
        "Ahoum <bookings@ahoum.example>",
    ]
