"""Deliveries and forwards through the shared attempt mechanism (`ahoum.attempts`).

A booking change commits its delivery together with the task of its first attempt; the
worker makes it. A process that dies at any line (right after the claim, during the HTTP call,
after the answer but before recording it) is taken over when the lease ends, and every repeat
carries the same `webhook-id`, so Ahoum's own receiver stores the notification once. A task row
lost altogether is found by `manage.py sweep`.

Both kinds of delivery go through the same path: booking notifications (to CRM_WEBHOOK_URL)
and received notifications forwarded to CRM_FORWARD_URL. The receivers are real HTTP servers
on 127.0.0.1; `run_tasks()` runs the real database worker.
"""

import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import time_machine
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from pytest_httpserver import HTTPServer

from accounts.tests.factories import UserFactory
from ahoum import attempts
from ahoum.attempts import AttemptStatus
from bookings import services as booking_services
from bookings.models import Booking
from bookings.signals import booking_changed
from conftest import client_for, run_tasks
from crm import client as crm_client
from crm import notifier, receiver
from crm.models import CRMBooking, CRMNotification, Delivery, DeliveryKind
from crm.tests.conftest import FORWARD_TOKEN, SECRET, Sender, assert_signed, original_payload
from events.tests.factories import EventFactory

SEND = "crm.tasks.send_delivery"


@dataclass(frozen=True)
class Target:
    """Where one kind of delivery goes, and how to queue one (not yet attempted)."""

    kind: str
    server: HTTPServer
    path: str
    secret: str
    queue: Callable[[], Delivery]


@pytest.fixture(params=[DeliveryKind.NOTIFICATION, DeliveryKind.FORWARD])
def target(request, db, settings, httpserver: HTTPServer, crm_secret, client) -> Target:
    settings.CRM_TIMEOUT_SECONDS = 2
    if request.param == DeliveryKind.NOTIFICATION:
        settings.CRM_WEBHOOK_URL = httpserver.url_for("/crm")

        def queue_notification() -> Delivery:
            # A free event: no hold, so no later change (and delivery) when travelling ahead.
            event = EventFactory(price=Decimal("0"))
            booking_services.book_event(user=UserFactory(), event_id=event.pk)
            return Delivery.objects.get(kind=DeliveryKind.NOTIFICATION)

        return Target(request.param, httpserver, "/crm", SECRET, queue_notification)

    settings.CRM_FORWARD_URL = httpserver.url_for("/receive")
    settings.CRM_FORWARD_TOKEN = FORWARD_TOKEN

    def queue_forward() -> Delivery:
        response = Sender(client).post(original_payload(type="booking.created", sequence=1))
        assert response.json()["forwarding_queued"] is True
        return Delivery.objects.get(kind=DeliveryKind.FORWARD)

    return Target(request.param, httpserver, "/receive", FORWARD_TOKEN, queue_forward)


def webhook_ids(server: HTTPServer) -> list[str]:
    return [request.headers["webhook-id"] for request, _ in server.log]


def refreshed(delivery: Delivery) -> Delivery:
    delivery.refresh_from_db()
    return delivery


def after_next_attempt(delivery: Delivery):
    """Just past the row's `next_attempt_at`: its retry time, or the end of its lease."""
    return time_machine.travel(refreshed(delivery).next_attempt_at + timedelta(seconds=1))


def assert_sent_only(target: Target, delivery: Delivery, times: int) -> None:
    """The receiver got `times` POSTs, all of this delivery, each signed, one webhook-id."""
    assert webhook_ids(target.server) == [delivery.webhook_id] * times
    for request, _ in target.server.log:
        assert_signed(request, target.secret, max_skew=10**6)
        assert json.loads(request.get_data()) == delivery.payload


def assert_nothing_more_is_sent(target: Target, times: int) -> None:
    """Much later, with every leftover task run (lease tasks included), nothing else went out."""
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        run_tasks()
    assert len(target.server.log) == times


def send_tasks() -> list[list]:
    return sorted(
        result.args_kwargs["args"] for result in DBTaskResult.objects.filter(task_path=SEND)
    )


def book_free(event) -> Booking:
    return booking_services.book_event(user=UserFactory(), event_id=event.pk)


def sent_booking_ids(server: HTTPServer) -> list[int]:
    return [json.loads(request.get_data())["booking_id"] for request, _ in server.log]


# --- the first attempt: the delivery's own task, committed with the change ---------------------


@pytest.mark.django_db(transaction=True)
def test_each_booking_change_commits_its_delivery_with_the_task_of_its_first_attempt(crm_server):
    crm_server.expect_request("/crm").respond_with_data("ok")
    event = EventFactory(price=Decimal("0"))

    response = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")
    book_free(event)
    book_free(event)

    assert response.status_code == 201
    deliveries = list(Delivery.objects.order_by("pk"))
    assert len(deliveries) == 3
    assert {d.status for d in deliveries} == {AttemptStatus.PENDING}
    # One task per delivery, due at once, naming the attempt it follows (none yet).
    assert send_tasks() == [[d.pk, 0] for d in deliveries]
    assert DBTaskResult.objects.ready().filter(task_path=SEND).count() == 3
    assert crm_server.log == []  # no network call in the change itself

    run_tasks()

    assert sorted(sent_booking_ids(crm_server)) == sorted(d.booking_id for d in deliveries)
    assert response.json()["id"] in sent_booking_ids(crm_server)
    assert {(d.status, d.attempts) for d in map(refreshed, deliveries)} == {
        (AttemptStatus.SUCCEEDED, 1)
    }
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        run_tasks()  # the lease tasks of the three attempts find them delivered
    assert len(crm_server.log) == 3


@pytest.mark.django_db(transaction=True)
def test_a_change_that_rolls_back_leaves_no_delivery_and_no_task(crm_server):
    event = EventFactory(price=Decimal("0"))
    written = []

    def fail(sender, **kwargs):
        written.append(Delivery.objects.count())
        raise OperationalError("the connection dropped")

    # Connected after the CRM's receiver, so the change fails after its delivery's INSERT.
    booking_changed.connect(fail, weak=False, dispatch_uid="test.fails_after_the_crm")
    try:
        with pytest.raises(OperationalError):
            book_free(event)
    finally:
        booking_changed.disconnect(dispatch_uid="test.fails_after_the_crm")

    assert written == [1]

    assert not Booking.objects.exists()
    assert not Delivery.objects.exists()
    assert send_tasks() == []


@pytest.mark.django_db(transaction=True)
def test_a_change_whose_first_attempt_cannot_be_enqueued_commits_nothing(crm_server, monkeypatch):
    """The delivery and its task commit together or not at all: never a delivery no task makes."""
    event = EventFactory(price=Decimal("0"))

    class QueueGone:
        def enqueue(self, *args):
            raise OperationalError("could not connect to server")

    monkeypatch.setattr(notifier, "POLICY", dataclasses.replace(notifier.POLICY, task=QueueGone()))
    with pytest.raises(OperationalError):
        book_free(event)

    assert not Booking.objects.exists()
    assert not Delivery.objects.exists()
    assert crm_server.log == []


@pytest.mark.django_db
def test_a_first_attempt_task_skips_a_delivery_whose_attempt_is_taken_or_not_due(crm_server):
    crm_server.expect_request("/crm").respond_with_data("ok")
    event = EventFactory(price=Decimal("0"))
    book_free(event)
    book_free(event)
    running, scheduled = Delivery.objects.order_by("pk")
    assert attempts.claim(Delivery, running.pk, after_attempts=0, policy=notifier.POLICY)
    later = timezone.now() + timedelta(minutes=5)
    Delivery.objects.filter(pk=scheduled.pk).update(next_attempt_at=later)

    run_tasks()

    assert crm_server.log == []
    assert (refreshed(running).status, refreshed(running).attempts) == (AttemptStatus.RUNNING, 1)
    assert (refreshed(scheduled).status, scheduled.attempts) == (AttemptStatus.PENDING, 0)

    # Past both times: the lease's task takes over the running one; the other has no task
    # left (its own found it not due), and the sweep finds it overdue.
    with time_machine.travel(later + timedelta(minutes=3)):
        run_tasks()
        assert webhook_ids(crm_server) == [running.webhook_id]
        call_command("sweep", stdout=io.StringIO())
        run_tasks()

    assert webhook_ids(crm_server) == [running.webhook_id, scheduled.webhook_id]
    assert {refreshed(running).status, refreshed(scheduled).status} == {AttemptStatus.SUCCEEDED}


# --- crash points: the process dies, the lease ends, the attempt is made again -------------------


def test_died_right_after_the_claim_the_attempt_is_made_when_the_lease_ends(target):
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()

    # A worker claims attempt 1, then dies before sending or recording anything.
    claimed = attempts.claim(Delivery, delivery.pk, after_attempts=0, policy=notifier.POLICY)
    assert (claimed.status, claimed.attempts) == (AttemptStatus.RUNNING, 1)
    assert claimed.next_attempt_at > timezone.now()  # the lease

    run_tasks()  # the first-attempt task finds attempt 1 taken; the lease has not ended
    assert target.server.log == []
    assert refreshed(delivery).status == AttemptStatus.RUNNING

    with after_next_attempt(delivery):
        run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.SUCCEEDED,
        2,
        0,
    )
    assert (delivery.last_status_code, delivery.last_error) == (200, "")
    assert_sent_only(target, delivery, times=1)
    assert_nothing_more_is_sent(target, times=1)


@pytest.mark.parametrize("receiver_got_it", [False, True], ids=["before-sending", "mid-answer"])
def test_died_during_the_call_the_attempt_is_repeated_with_the_same_webhook_id(
    target, monkeypatch, receiver_got_it
):
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()
    real_post = requests.post

    def dies(*args, **kwargs):
        if receiver_got_it:
            real_post(*args, **kwargs)  # the receiver took it and answered 200
        raise SystemExit("worker killed during the HTTP call")

    with monkeypatch.context() as patched:
        if receiver_got_it:
            patched.setattr(crm_client.requests, "post", dies)
        else:
            patched.setattr(crm_client, "post", dies)
        with pytest.raises(SystemExit):
            notifier.attempt_delivery(delivery_id=delivery.pk, after_attempts=0)

    sent_before = 1 if receiver_got_it else 0
    assert len(target.server.log) == sent_before
    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts) == (AttemptStatus.RUNNING, 1)
    run_tasks()  # the first-attempt task: attempt 1 is taken, and its lease still runs
    assert len(target.server.log) == sent_before

    with after_next_attempt(delivery):
        run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.SUCCEEDED,
        2,
        0,
    )
    assert_sent_only(target, delivery, times=sent_before + 1)
    assert_nothing_more_is_sent(target, times=sent_before + 1)


def dies_once(monkeypatch, name: str) -> list:
    """`ahoum.attempts.<name>` raises SystemExit on its first call for a delivery, then
    works; the deliveries it was called for (other kinds, such as emails, pass through)."""
    real = getattr(attempts, name)
    calls = []

    def once(model, pk, *args, **kwargs):
        if model is Delivery:
            calls.append(pk)
            if len(calls) == 1:
                raise SystemExit(f"worker killed before {name}")
        return real(model, pk, *args, **kwargs)

    monkeypatch.setattr(attempts, name, once)
    return calls


def test_answered_but_died_before_recording_the_attempt_is_repeated_with_the_same_webhook_id(
    target, monkeypatch
):
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()
    calls = dies_once(monkeypatch, "record_success")

    with pytest.raises(SystemExit):
        notifier.attempt_delivery(delivery_id=delivery.pk, after_attempts=0)

    assert len(target.server.log) == 1  # the receiver has it; we do not know that
    assert refreshed(delivery).status == AttemptStatus.RUNNING

    with after_next_attempt(delivery):
        run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.SUCCEEDED,
        2,
        0,
    )
    assert calls == [delivery.pk, delivery.pk]
    assert_sent_only(target, delivery, times=2)
    assert_nothing_more_is_sent(target, times=2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("crash", ["mid-answer", "before-recording"])
def test_a_repeat_after_a_lost_outcome_is_stored_once_by_ahoums_own_receiver(
    settings, live_server, crm_secret, monkeypatch, crash
):
    settings.CRM_WEBHOOK_URL = f"{live_server.url}/crm/webhook"
    book_free(EventFactory(price=Decimal("0")))
    delivery = Delivery.objects.get()
    receipts = []
    real_receive = receiver.receive_notification

    def receive(**kwargs):
        receipts.append(real_receive(**kwargs))
        return receipts[-1]

    monkeypatch.setattr(receiver, "receive_notification", receive)
    with monkeypatch.context() as patched:
        if crash == "mid-answer":
            real_post = requests.post

            def dies(*args, **kwargs):
                real_post(*args, **kwargs)
                raise SystemExit("worker killed while reading the answer")

            patched.setattr(crm_client.requests, "post", dies)
        else:
            dies_once(patched, "record_success")
        with pytest.raises(SystemExit):
            notifier.attempt_delivery(delivery_id=delivery.pk, after_attempts=0)

    assert CRMNotification.objects.filter(webhook_id=delivery.webhook_id).count() == 1
    assert refreshed(delivery).status == AttemptStatus.RUNNING

    with after_next_attempt(delivery):
        run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        AttemptStatus.SUCCEEDED,
        2,
        200,
    )
    # Both attempts reached the receiver; the repeat was recognised by its webhook-id.
    assert [(r.stored, r.duplicate) for r in receipts] == [(True, False), (False, True)]
    (notification,) = CRMNotification.objects.all()
    assert (notification.webhook_id, notification.signed) == (delivery.webhook_id, True)
    assert CRMBooking.objects.get().booking_id == delivery.booking_id


def test_an_attempt_lost_past_the_retry_window_gives_up(target, settings):
    settings.CRM_RETRY_HOURS = 1
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()
    attempts.claim(Delivery, delivery.pk, after_attempts=0, policy=notifier.POLICY)

    with time_machine.travel(delivery.retry_until + timedelta(seconds=1)):
        run_tasks()  # the lease task: no attempt may start after the window

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts) == (AttemptStatus.GAVE_UP, 1)
    assert "never finished" in delivery.last_error
    assert delivery.gave_up_at is not None and delivery.next_attempt_at is None
    assert target.server.log == []


# --- outcomes: refused, retried, out of time ---------------------------------------------------


def test_a_refusal_gives_up_at_once_with_its_status_code(target):
    target.server.expect_request(target.path).respond_with_data("unknown booking", status=422)
    delivery = target.queue()

    run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.GAVE_UP,
        1,
        1,
    )
    assert delivery.last_status_code == 422
    assert delivery.last_error.startswith("HTTP 422: unknown booking")
    assert delivery.gave_up_at is not None and delivery.next_attempt_at is None
    assert delivery.succeeded_at is None
    assert_sent_only(target, delivery, times=1)
    assert_nothing_more_is_sent(target, times=1)


def test_a_server_error_is_retried_and_delivered_later(target):
    target.server.expect_oneshot_request(target.path).respond_with_data("busy", status=503)
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()

    run_tasks()
    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.PENDING,
        1,
        1,
    )
    assert delivery.last_status_code == 503
    assert delivery.next_attempt_at > timezone.now()

    with after_next_attempt(delivery):
        run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.SUCCEEDED,
        2,
        1,
    )
    assert (delivery.last_status_code, delivery.last_error) == (200, "")
    assert delivery.succeeded_at is not None and delivery.gave_up_at is None
    assert_sent_only(target, delivery, times=2)
    assert_nothing_more_is_sent(target, times=2)


def test_still_failing_past_the_retry_window_gives_up(target, settings):
    settings.CRM_RETRY_HOURS = 1
    settings.CRM_RETRY_MAX_DELAY_SECONDS = 600
    target.server.expect_request(target.path).respond_with_data("down", status=500)
    delivery = target.queue()

    run_tasks()
    while refreshed(delivery).status == AttemptStatus.PENDING:
        with after_next_attempt(delivery):
            run_tasks()

    assert delivery.status == AttemptStatus.GAVE_UP
    assert delivery.last_status_code == 500
    assert delivery.last_attempt_at <= delivery.retry_until
    assert delivery.last_attempt_at <= delivery.gave_up_at
    assert delivery.next_attempt_at is None
    times = len(target.server.log)
    assert delivery.attempts == delivery.failures == times > 4
    assert_sent_only(target, delivery, times=times)
    assert_nothing_more_is_sent(target, times=times)


# --- the sweep: the safety net under lost task rows ---------------------------------------------


@pytest.mark.parametrize("lost", ["first-attempt", "lease"])
def test_sweep_re_enqueues_a_delivery_whose_task_row_was_lost(target, capsys, lost):
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()
    if lost == "lease":
        # A worker claimed the attempt and died, and the lease's task row was lost too.
        attempts.claim(Delivery, delivery.pk, after_attempts=0, policy=notifier.POLICY)
    DBTaskResult.objects.all().delete()

    call_command("sweep")  # not overdue by the grace yet
    assert "deliveries: 0 overdue re-enqueued" in capsys.readouterr().out
    run_tasks()
    assert target.server.log == []

    with time_machine.travel(refreshed(delivery).next_attempt_at + timedelta(seconds=121)):
        call_command("sweep")
        assert "deliveries: 1 overdue re-enqueued" in capsys.readouterr().out
        run_tasks()

    delivery = refreshed(delivery)
    assert delivery.status == AttemptStatus.SUCCEEDED
    assert delivery.attempts == (2 if lost == "lease" else 1)
    assert_sent_only(target, delivery, times=1)
    assert_nothing_more_is_sent(target, times=1)


def test_a_spare_task_from_the_sweep_never_sends_twice(target, capsys):
    """A busy worker leaves a delivery overdue with its task still queued: the sweep adds a
    second task for the same attempt, and only one of them makes it."""
    target.server.expect_request(target.path).respond_with_data("ok")
    delivery = target.queue()

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        call_command("sweep")
        assert "deliveries: 1 overdue re-enqueued" in capsys.readouterr().out
        assert send_tasks() == [[delivery.pk, 0], [delivery.pk, 0]]
        run_tasks()

    delivery = refreshed(delivery)
    assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 1)
    assert_sent_only(target, delivery, times=1)
    assert_nothing_more_is_sent(target, times=1)
