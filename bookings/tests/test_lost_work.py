"""Work whose task is lost, blocked or deadlocked still ends right (found in review).

A worker killed while it holds a task row leaves it RUNNING for ever (django-tasks-db has no
lease of its own); a task that raises ends FAILED and is never run again. Whatever such a
task stood for must still happen: the sweep (`manage.py sweep`) and the attempt rows' own
lease tasks take it over.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from ahoum import attempts
from ahoum.attempts import AttemptStatus
from bookings import notifications, services
from bookings.models import BookingEmail, Refund, StripeEventReceipt
from bookings.services import payments, refunds
from conftest import client_for, run_tasks, run_tasks_until
from events.models import Event
from events.tests.factories import EventFactory


@pytest.fixture
def event(db):
    return EventFactory(price=Decimal("40.00"), currency="EUR", capacity=5, title="Breathwork")


def worker_died_holding(task_name: str) -> int:
    """A worker claimed the READY rows of this task and died (kill -9, OOM, the database lost
    mid-task: run_worker restarts db_worker, but django-tasks-db leaves the row RUNNING)."""
    return DBTaskResult.objects.filter(status="READY", task_path__endswith=task_name).update(
        status="RUNNING", started_at=timezone.now(), worker_ids=["dead-worker"]
    )


def sweep_and_work_for(hours: float) -> None:
    """The scheduler's sweep every few minutes and the worker, for `hours`."""
    start = timezone.now()
    for minutes in (5, 30, 60 * hours):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            call_command("sweep", verbosity=0)
            run_tasks()
    run_tasks_until(start + timedelta(hours=hours))


# --- 1. A Stripe payment whose apply task is lost is never applied, refunded or flagged -------


@pytest.mark.django_db
def test_stripe_payment_whose_apply_task_was_lost_is_confirmed_or_refunded(
    stripe_webhooks, stripe_on, event, user
):
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    completed = stripe_on.event(
        "checkout.session.completed", stripe_on.pay_session(booking.checkout_session_id)
    )
    assert stripe_webhooks.send(completed).status_code == 200  # Stripe will not send it again
    assert worker_died_holding("attempt_stripe_event") == 1

    sweep_and_work_for(hours=48)

    booking.refresh_from_db()
    charged = stripe_on.charge_for_session(booking.checkout_session_id)
    assert charged["amount_captured"] == 4000  # the customer paid, and it counts:
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")


@pytest.mark.postgres(reason="a real row lock held by another connection")
@pytest.mark.django_db(transaction=True)
def test_stripe_payment_applied_while_the_event_row_is_busy_is_not_lost(
    settings, stripe_webhooks, stripe_on
):
    """LOCK_TIMEOUT_MS turns a busy event row into TryAgain; in a task that is a FAILED task
    row that nothing runs again (e.g. while a 200-booking settle batch holds the event)."""
    settings.LOCK_TIMEOUT_MS = 200
    event = EventFactory(price=Decimal("40.00"), currency="EUR", capacity=5)
    booking = payments.book_with_checkout(user=UserFactory(), event_id=event.pk)
    completed = stripe_on.event(
        "checkout.session.completed", stripe_on.pay_session(booking.checkout_session_id)
    )
    assert stripe_webhooks.send(completed).status_code == 200

    locked, release = threading.Event(), threading.Event()

    def hold_the_event_row():
        try:
            with transaction.atomic():
                Event.objects.select_for_update().get(pk=event.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_event_row)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        run_tasks()  # applying the event meets the lock timeout: recorded, retried later
        receipt = StripeEventReceipt.objects.get()
        assert (receipt.status, receipt.failures) == ("pending", 1)
        assert "TryAgain" in receipt.last_error
    finally:
        release.set()
        holder.join(timeout=30)

    run_tasks_until(timezone.now() + timedelta(hours=1))

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert StripeEventReceipt.objects.get().status == "succeeded"


# --- 2. A transition's emails are lost with their task row -----------------------------------


@pytest.mark.django_db
def test_emails_of_a_transition_whose_task_row_was_lost_are_still_sent_or_visible(user):
    free = EventFactory(price=Decimal("0"), capacity=5)
    booking = services.book_event(user=user, event_id=free.pk)  # owes 2 "confirmed" emails
    # The rows are written with the booking; a worker dies holding both first-attempt tasks.
    assert BookingEmail.objects.filter(booking=booking).count() == 2
    assert worker_died_holding("send_booking_email") == 2

    sweep_and_work_for(hours=24)

    assert len(mail.outbox) == 2
    assert set(BookingEmail.objects.values_list("status", flat=True)) == {"succeeded"}


# --- 3. Paid through one session, the booking's other open session must not stay payable -----


@pytest.fixture
def after_the_hold():
    """Travel past a booking's hold for the rest of the test."""
    travellers = []

    def travel(booking):
        traveller = time_machine.travel(booking.hold_expires_at + timedelta(minutes=1), tick=False)
        traveller.start()
        travellers.append(traveller)

    yield travel
    for traveller in travellers:
        traveller.stop()


def paid_through_the_first_of_two_sessions(fake, booking, user, after_the_hold) -> str:
    """Pay; the webhook is late; the hold lapses; the person renews the checkout (a second,
    open session); then the first payment is applied. The open session's id."""
    first = fake.pay_session(booking.checkout_session_id)
    paid_at = timezone.now()
    after_the_hold(booking)
    services.expire_stale_holds()
    renewed = client_for(user).post(f"/bookings/{booking.pk}/checkout").json()
    services.record_checkout_payment(
        booking_id=booking.pk,
        session_id=first["id"],
        payment_intent_id=first["payment_intent"],
        paid_at=paid_at,
    )
    booking.refresh_from_db()
    return renewed["checkout_session_id"]


@pytest.mark.django_db
def test_booking_paid_through_an_earlier_session_expires_its_open_renewed_session(
    stripe_on, event, user, after_the_hold
):
    """Else the person could pay twice (refunded later, but Stripe keeps its fee)."""
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    renewed = paid_through_the_first_of_two_sessions(stripe_on, booking, user, after_the_hold)
    run_tasks()

    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert stripe.checkout.Session.retrieve(renewed).status == "expired"


@pytest.mark.django_db
def test_cancelling_a_paid_booking_expires_its_other_open_session(
    stripe_on, event, user, after_the_hold
):
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    renewed = paid_through_the_first_of_two_sessions(stripe_on, booking, user, after_the_hold)
    services.cancel_booking(booking=booking, by=user)
    run_tasks()

    assert stripe.checkout.Session.retrieve(renewed).status == "expired"


# --- 4. Lock order: a refund giving up locks refund -> booking; mark_refunded booking -> refund


@pytest.mark.postgres(reason="a deadlock between two real connections")
@pytest.mark.django_db(transaction=True)
def test_refund_giving_up_and_charge_refunded_at_once_do_not_deadlock(
    settings, stripe_on, monkeypatch
):
    """record_failure holds the Refund row and gives up: its PaymentIssue INSERT needs a KEY
    SHARE lock on the booking (FK check). mark_refunded (charge.refunded, refunded by staff
    in the dashboard) holds the event and the booking and waits for the Refund row."""
    settings.REFUND_MAX_ATTEMPTS = 1
    event = EventFactory(price=Decimal("40.00"), currency="EUR", capacity=5)
    booking = payments.book_with_checkout(user=UserFactory(), event_id=event.pk)
    session = stripe_on.pay_session(booking.checkout_session_id)
    services.record_checkout_payment(
        booking_id=booking.pk,
        session_id=session["id"],
        payment_intent_id=session["payment_intent"],
        paid_at=timezone.now(),
    )
    booking.refresh_from_db()
    services.cancel_booking(booking=booking, by=booking.user)
    refund = Refund.objects.get(booking=booking)
    stripe_on.fail_next("POST", "/v1/refunds", status=500)

    holding_refund, go_on = threading.Event(), threading.Event()
    real_give_up = attempts._give_up

    def give_up_slowly(row, **kwargs):
        holding_refund.set()  # record_failure holds the Refund row here
        go_on.wait(timeout=30)
        return real_give_up(row, **kwargs)

    monkeypatch.setattr(attempts, "_give_up", give_up_slowly)
    errors: dict[str, BaseException] = {}

    def run(name, function, **kwargs):
        try:
            function(**kwargs)
        except BaseException as error:
            errors[name] = error
        finally:
            connections.close_all()

    worker = threading.Thread(
        target=run,
        args=("attempt_refund", refunds.attempt_refund),
        kwargs={"refund_id": refund.pk, "after_attempts": 0},
    )
    webhook = threading.Thread(
        target=run,
        args=("mark_refunded", services.mark_refunded),
        kwargs={"booking_id": booking.pk, "reason": "refunded in Stripe (charge.refunded)"},
    )
    worker.start()
    assert holding_refund.wait(timeout=30)
    webhook.start()
    deadline = time.monotonic() + 10
    while not _a_backend_waits_for_a_lock():
        assert time.monotonic() < deadline, "mark_refunded never waited for the refund row"
        time.sleep(0.02)
    go_on.set()
    worker.join(timeout=30)
    webhook.join(timeout=30)

    assert not errors, f"lock-order deadlock: {errors!r}"


def _a_backend_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


# --- 5. An email whose send failed after its lease ended is never retried --------------------


@pytest.mark.django_db
def test_email_send_that_raises_after_its_lease_ended_is_retried(user):
    """notifications.py: 'A send that *raises* ... the backend reports it did not deliver ...
    so it is retried.' Not when it raises after the lease: the lease task gave it up first,
    and record_failure ignores a row that is no longer running."""
    free = EventFactory(price=Decimal("0"), capacity=5)
    services.book_event(user=user, event_id=free.pk)
    DBTaskResult.objects.filter(status="READY", task_path__endswith="send_booking_email").delete()
    email = BookingEmail.objects.filter(recipient_kind="attendee").get()

    claimed = attempts.claim(BookingEmail, email.pk, after_attempts=0, policy=notifications.POLICY)
    assert claimed is not None  # attempt 1 starts; the SMTP server is slow...
    with time_machine.travel(claimed.next_attempt_at + timedelta(seconds=1), tick=False):
        run_tasks()  # the lease task: the outcome is unknown, at most once -> gave_up
        # ... and then the server refuses the message: certainly not sent.
        attempts.record_failure(
            BookingEmail,
            email.pk,
            attempt=claimed.attempts,
            error="SMTPServerDisconnected: refused",
            policy=notifications.POLICY,
        )
    run_tasks_until(timezone.now() + timedelta(days=1))

    email.refresh_from_db()
    assert email.status == AttemptStatus.SUCCEEDED, (
        f"known not sent, yet {email.status}: {email.last_error}"
    )
