"""Money owed back goes first: refunds, and the batches of a cancelled event that owe them,
are taken by a worker before the emails, CRM deliveries and session expiries queued with them
(`tasks.MONEY_PRIORITY`), so an event cancel of thousands refunds everyone within minutes.

Through the real `db_worker` against the fake Stripe, as production runs them.
"""

from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.core.management import call_command
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services, tasks
from bookings.models import Booking, BookingEmail, Refund
from bookings.services import payments
from conftest import client_for, run_tasks
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

MONEY_TASKS = {"bookings.tasks.process_refund", "bookings.tasks.settle_cancelled_event"}


@pytest.fixture
def event():
    return EventFactory(price=Decimal("40.00"), currency="EUR", capacity=10, title="Breathwork")


def paid_booking(fake, event) -> Booking:
    """Booked and paid through Checkout; its confirmation emails are queued, not sent."""
    booking = payments.book_with_checkout(user=UserFactory(), event_id=event.pk)
    session = fake.pay_session(booking.checkout_session_id)
    services.record_checkout_payment(
        booking_id=booking.pk,
        session_id=session["id"],
        payment_intent_id=session["payment_intent"],
        paid_at=booking.created_at,
    )
    booking.refresh_from_db()
    assert booking.payment_status == "paid"
    return booking


def run_one_task() -> None:
    """One pass of the real worker: it takes the first task in its own order, runs it, stops."""
    with mock.patch.object(db_worker, "close_old_connections", lambda: None):
        call_command(
            "db_worker", "--batch", "--max-tasks", "1", "--no-startup-delay", "--interval", "0",
            verbosity=0,
        )  # fmt: skip


def test_a_refund_is_made_before_the_emails_queued_before_it(stripe_on, event):
    booking = paid_booking(stripe_on, event)
    services.cancel_booking(booking=booking, by=booking.user)
    assert BookingEmail.objects.filter(status=AttemptStatus.PENDING).count() == 3

    run_one_task()

    assert Refund.objects.get(booking=booking).status == AttemptStatus.SUCCEEDED
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 1
    assert not mail.outbox  # confirmation and cancellation emails wait their turn
    run_tasks()
    assert len(mail.outbox) == 4  # ... and follow (the refund's own email too)


def test_cancelled_event_refunds_every_booking_before_any_email_or_session_expiry(
    stripe_on, event, monkeypatch
):
    monkeypatch.setattr(tasks, "SETTLE_BATCH", 2)  # three batches
    paid = [paid_booking(stripe_on, event) for _ in range(5)]
    response = client_for(event.facilitator).post(f"/facilitator/cancel/{event.pk}")
    assert response.status_code == 200

    run_tasks()

    ran = list(
        DBTaskResult.objects.filter(status="SUCCESSFUL")
        .order_by("started_at")
        .values_list("task_path", flat=True)
    )
    money = [position for position, path in enumerate(ran) if path in MONEY_TASKS]
    assert ran.count("bookings.tasks.process_refund") == 5
    assert ran.count("bookings.tasks.settle_cancelled_event") == 3
    # Every batch and every refund ran before anything else queued with them (or before).
    assert money == list(range(len(money)))
    assert len(ran) > len(money)  # emails and session expiries were waiting
    assert set(Booking.objects.filter(pk__in=[b.pk for b in paid]).values_list(
        "status", "payment_status")) == {("cancelled", "refunded")}  # fmt: skip
