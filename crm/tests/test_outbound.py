"""Notifications out: one signed delivery per booking change, retried by the real worker.

The CRM is a real HTTP server on 127.0.0.1 (pytest-httpserver); the real `requests` calls
it; `run_tasks()` runs the real database backend's `db_worker`.
"""

import json
import re
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from accounts.tests.factories import UserFactory
from ahoum import attempts
from ahoum.attempts import AttemptStatus
from bookings import services as booking_services
from bookings.exceptions import SoldOut
from bookings.models import Booking, BookingAudit
from conftest import client_for, run_tasks
from crm import notifier
from crm.models import Delivery
from crm.tests.conftest import SECRET, assert_signed, free_port
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


@pytest.fixture
def paid_event():
    return EventFactory(price=Decimal("49.50"), currency="EUR", title="Sound Bath", capacity=3)


@pytest.fixture
def free_event():
    """No hold, so no expiry: tests that travel hours ahead see only their own delivery."""
    return EventFactory(price=Decimal("0"))


def received(server: HTTPServer) -> list:
    return [request for request, _ in server.log]


def received_json(server: HTTPServer) -> list[dict]:
    return [json.loads(request.get_data()) for request in received(server)]


def wait_for(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def after_next_attempt(delivery: Delivery):
    delivery.refresh_from_db()
    return time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1))


# --- payload and signature ---------------------------------------------------------------------


def test_notification_payload_keeps_the_originals_keys_and_adds_state(crm_server, paid_event):
    crm_server.expect_request("/crm", method="POST").respond_with_data("ok")
    person = UserFactory(name="Alice Example", email="alice@example.com")

    response = client_for(person).post("/bookings/", {"event_id": paid_event.pk}, format="json")
    run_tasks()

    assert response.status_code == 201
    booking = Booking.objects.get()
    audit = BookingAudit.objects.get(booking=booking)
    (payload,) = received_json(crm_server)
    assert payload == {
        # the original's keys
        "booking_id": booking.pk,
        "user": {"name": "Alice Example", "email": "alice@example.com"},
        "event": paid_event.pk,
        "facilitator_id": paid_event.facilitator_id,
        # Ahoum's additions
        "type": "booking.created",
        "user_id": person.pk,
        "status": "pending",
        "payment_status": "unpaid",
        "amount": "49.50",
        "currency": "EUR",
        "event_title": "Sound Bath",
        "starts_at": paid_event.starts_at.isoformat(),
        "occurred_at": audit.created_at.isoformat(),
        "sequence": 1,
        "reason": "booked",
        "seats": 1,
        "attendees": [
            {
                "id": booking.attendees.get().pk,
                "name": "Alice Example",
                "email": "alice@example.com",
                "status": "pending",
            }
        ],
    }
    assert ISO_WITH_OFFSET.match(payload["starts_at"])
    assert ISO_WITH_OFFSET.match(payload["occurred_at"])
    assert datetime.fromisoformat(payload["starts_at"]) == paid_event.starts_at


def test_group_booking_notifications_carry_seats_attendees_and_the_seat_cancelled(
    crm_server, paid_event
):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booker = UserFactory(name="Alice", email="alice@example.com")
    booking = booking_services.book_event(
        user=booker,
        event_id=paid_event.pk,
        seats=3,
        attendees=[{"name": "Bea", "email": "bea@example.com"}, {"name": "Cai"}],
    )
    booking_services.mark_paid(booking_id=booking.pk, reason="paid at the desk")
    alice, bea, cai = booking.attendees.order_by("position")
    booking_services.cancel_attendee(booking=booking, attendee_id=bea.pk, by=booker)
    run_tasks()

    created, paid, seat_cancelled = sorted(received_json(crm_server), key=lambda p: p["sequence"])
    assert (created["seats"], created["amount"], paid["seats"]) == (3, "148.50", 3)
    assert created["attendees"] == [
        {"id": alice.pk, "name": "Alice", "email": "alice@example.com", "status": "pending"},
        {"id": bea.pk, "name": "Bea", "email": "bea@example.com", "status": "pending"},
        {"id": cai.pk, "name": "Cai", "email": "", "status": "pending"},
    ]
    assert "attendee" not in created and "attendee" not in paid
    # One seat cancelled: the booking stays confirmed and paid, with the seats left.
    assert seat_cancelled == {
        **paid,
        "type": "booking.attendee_cancelled",
        "sequence": 3,
        "occurred_at": seat_cancelled["occurred_at"],
        "reason": seat_cancelled["reason"],
        "seats": 2,
        "amount": "99.00",
        "attendees": [
            {"id": alice.pk, "name": "Alice", "email": "alice@example.com", "status": "confirmed"},
            {"id": bea.pk, "name": "Bea", "email": "bea@example.com", "status": "cancelled"},
            {"id": cai.pk, "name": "Cai", "email": "", "status": "confirmed"},
        ],
        "attendee": {"id": bea.pk, "name": "Bea", "email": "bea@example.com"},
    }
    assert (seat_cancelled["status"], seat_cancelled["payment_status"]) == ("confirmed", "paid")
    delivery = Delivery.objects.get(sequence=3)
    assert (delivery.event_type, delivery.payload) == ("booking.attendee_cancelled", seat_cancelled)


def test_a_booking_cancelled_whole_keeps_its_seats_and_shows_every_seat_cancelled(
    crm_server, free_event
):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booker = UserFactory()
    booking = booking_services.book_event(user=booker, event_id=free_event.pk, seats=2)
    booking_services.cancel_booking(booking=booking, by=booker)
    run_tasks()

    cancelled = Delivery.objects.get(event_type="booking.cancelled").payload
    assert cancelled["seats"] == 2
    assert [seat["status"] for seat in cancelled["attendees"]] == ["cancelled", "cancelled"]
    assert "attendee" not in cancelled


def test_notification_is_signed_with_bearer_and_standard_webhooks_headers(crm_server, paid_event):
    crm_server.expect_request("/crm", method="POST").respond_with_data("ok")

    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    run_tasks()

    (request,) = received(crm_server)
    delivery = Delivery.objects.get()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert re.fullmatch(r"msg_[0-9a-f]{32}", delivery.webhook_id)
    assert_signed(request, SECRET)  # recomputed here with hmac, not with crm.signing
    assert json.loads(request.get_data())["booking_id"] == delivery.booking_id


def test_retries_keep_the_webhook_id_and_sign_each_attempt_afresh(crm_server, paid_event):
    crm_server.expect_oneshot_request("/crm").respond_with_data("busy", status=503)
    crm_server.expect_request("/crm").respond_with_data("ok")

    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    run_tasks()
    with after_next_attempt(Delivery.objects.get()):
        run_tasks()

    first, second = received(crm_server)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.get_data() == second.get_data()
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert_signed(second, SECRET, max_skew=10**6)


def test_every_booking_change_is_one_delivery_in_sequence(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    person = UserFactory()

    booking = booking_services.book_event(user=person, event_id=paid_event.pk)
    booking_services.mark_paid(booking_id=booking.pk, reason="paid at the desk")
    booking_services.cancel_booking(booking=booking, by=person)
    booking_services.mark_refunded(booking_id=booking.pk, reason="refunded by hand")
    other = booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    with time_machine.travel(other.hold_expires_at + timedelta(seconds=1)):
        booking_services.expire_stale_holds()  # the scheduler's work (`manage.py sweep`)
        run_tasks()  # every delivery

    sent = {(p["booking_id"], p["sequence"]): p for p in received_json(crm_server)}
    assert [
        (sent[(booking.pk, n)]["type"], sent[(booking.pk, n)]["status"]) for n in (1, 2, 3, 4)
    ] == [
        ("booking.created", "pending"),
        ("booking.paid", "confirmed"),
        ("booking.cancelled", "cancelled"),
        ("booking.refunded", "cancelled"),
    ]
    assert sent[(booking.pk, 4)]["payment_status"] == "refunded"
    assert [sent[(other.pk, n)]["type"] for n in (1, 2)] == ["booking.created", "booking.expired"]
    # One delivery per audit row, nothing more.
    assert len(sent) == len(received(crm_server)) == BookingAudit.objects.count() == 6
    assert set(Delivery.objects.values_list("status", flat=True)) == {AttemptStatus.SUCCEEDED}


def test_cancelling_an_event_notifies_each_of_its_bookings(crm_server, free_event):
    from bookings.services import event_cancellation

    crm_server.expect_request("/crm").respond_with_data("ok")
    bookings = [
        booking_services.book_event(user=UserFactory(), event_id=free_event.pk) for _ in range(3)
    ]

    event_cancellation.cancel_event(event=free_event, by=free_event.facilitator, reason="ill")
    run_tasks()

    cancelled = [p for p in received_json(crm_server) if p["type"] == "booking.event_cancelled"]
    assert sorted(p["booking_id"] for p in cancelled) == sorted(b.pk for b in bookings)
    assert {(p["status"], p["sequence"]) for p in cancelled} == {("cancelled", 2)}


def test_payload_is_fixed_when_queued_and_later_changes_do_not_alter_it(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    person = UserFactory(name="Before")

    booking = booking_services.book_event(user=person, event_id=paid_event.pk)
    person.name = "After"
    person.save()
    paid_event.title = "Renamed"
    paid_event.save()
    booking_services.mark_paid(booking_id=booking.pk)
    run_tasks()

    created, paid = sorted(received_json(crm_server), key=lambda p: p["sequence"])
    assert (created["user"]["name"], created["event_title"], created["status"]) == (
        "Before",
        "Sound Bath",
        "pending",
    )
    assert (paid["user"]["name"], paid["event_title"], paid["status"]) == (
        "After",
        "Renamed",
        "confirmed",
    )


def test_a_refused_booking_queues_no_delivery(crm_server):
    event = EventFactory(capacity=1)
    booking_services.book_event(user=UserFactory(), event_id=event.pk)

    with pytest.raises(SoldOut):
        booking_services.book_event(user=UserFactory(), event_id=event.pk)

    assert Delivery.objects.count() == 1  # the first booking's; the rollback took nothing along


def test_empty_crm_webhook_url_turns_notifications_off(settings, paid_event):
    settings.CRM_WEBHOOK_URL = ""

    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)

    assert not Delivery.objects.exists()


def test_disabled_notifications_are_logged_once_at_start(settings, caplog):
    from django.apps import apps

    settings.CRM_WEBHOOK_URL = ""
    with caplog.at_level("INFO", logger="crm"):
        apps.get_app_config("crm").ready()
        booking_services.book_event(user=UserFactory(), event_id=EventFactory().pk)
        booking_services.book_event(user=UserFactory(), event_id=EventFactory().pk)

    assert [r.getMessage() for r in caplog.records if r.name == "crm"] == [
        "CRM notifications are off: CRM_WEBHOOK_URL is empty."
    ]


# --- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_and_throttling_are_retried_with_backoff(crm_server, paid_event, status):
    crm_server.expect_request("/crm").respond_with_data("not now", status=status)
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)

    before = timezone.now()
    run_tasks()

    delivery = Delivery.objects.get()
    assert delivery.status == AttemptStatus.PENDING
    assert (delivery.attempts, delivery.failures, delivery.last_status_code) == (1, 1, status)
    assert delivery.last_error.startswith(f"HTTP {status}: not now")
    # base 10 s with +-20% jitter
    assert before + timedelta(seconds=7) < delivery.next_attempt_at
    assert delivery.next_attempt_at < timezone.now() + timedelta(seconds=13)

    with after_next_attempt(delivery):
        run_tasks()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.failures) == (AttemptStatus.PENDING, 2, 2)
    # the second wait doubles
    gap = delivery.next_attempt_at - delivery.last_attempt_at
    assert timedelta(seconds=15) < gap < timedelta(seconds=25)


def test_retry_after_is_honoured(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "120"})
    )
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)

    run_tasks()

    delivery = Delivery.objects.get()
    assert delivery.next_attempt_at - delivery.last_attempt_at >= timedelta(seconds=120)
    with time_machine.travel(timezone.now() + timedelta(seconds=60)):
        run_tasks()
    assert len(received(crm_server)) == 1  # not before the receiver asked


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_client_errors_fail_without_retry(crm_server, free_event, status):
    crm_server.expect_request("/crm").respond_with_data("no", status=status)
    booking_services.book_event(user=UserFactory(), event_id=free_event.pk)

    run_tasks()
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        run_tasks()

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.failures) == (AttemptStatus.GAVE_UP, 1, 1)
    assert delivery.last_status_code == status  # refused, not out of retries
    assert delivery.gave_up_at >= delivery.last_attempt_at
    assert delivery.next_attempt_at is None
    assert len(received(crm_server)) == 1


def test_network_errors_and_timeouts_are_retried(settings, crm_server, paid_event):
    settings.CRM_TIMEOUT_SECONDS = 0.3

    def too_slow(request):
        time.sleep(1)
        return Response("late")

    crm_server.expect_oneshot_request("/crm").respond_with_handler(too_slow)
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    run_tasks()
    delivery = Delivery.objects.get()
    assert delivery.status == AttemptStatus.PENDING
    assert delivery.last_error.startswith("timeout:")
    assert delivery.last_status_code is None
    wait_for(lambda: len(crm_server.log) == 1)  # the slow answer ends within this test

    settings.CRM_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/crm"
    booking_services.book_event(user=UserFactory(), event_id=EventFactory().pk)
    run_tasks()
    unreachable = Delivery.objects.get(target_url=settings.CRM_WEBHOOK_URL)
    assert unreachable.status == AttemptStatus.PENDING
    assert unreachable.last_error.startswith("network error: ConnectionError")


def test_delivery_gives_up_after_the_retry_window(settings, crm_server, free_event):
    settings.CRM_RETRY_HOURS = 1
    settings.CRM_RETRY_MAX_DELAY_SECONDS = 600
    crm_server.expect_request("/crm").respond_with_data("down", status=500)
    booking_services.book_event(user=UserFactory(), event_id=free_event.pk)

    run_tasks()
    delivery = Delivery.objects.get()
    while delivery.status == AttemptStatus.PENDING:
        with after_next_attempt(delivery):
            run_tasks()
        delivery.refresh_from_db()

    assert delivery.status == AttemptStatus.GAVE_UP
    assert delivery.last_attempt_at <= delivery.retry_until
    assert delivery.last_attempt_at <= delivery.gave_up_at
    assert delivery.next_attempt_at is None
    assert delivery.last_status_code == 500
    assert delivery.attempts == delivery.failures == len(received(crm_server)) > 4


# --- exactly once ----------------------------------------------------------------------------


def test_two_tasks_for_the_same_attempt_send_once(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    delivery = Delivery.objects.get()

    first = notifier.attempt_delivery(delivery_id=delivery.pk, after_attempts=0)
    second = notifier.attempt_delivery(delivery_id=delivery.pk, after_attempts=0)
    run_tasks()  # the task queued with the delivery: attempt 1 is made already

    assert first == second == AttemptStatus.SUCCEEDED
    assert len(received(crm_server)) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


def test_an_attempt_lost_with_its_worker_is_made_again_after_its_lease(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    delivery = Delivery.objects.get()

    # A worker claims attempt 1, then dies before sending or recording anything.
    claimed = attempts.claim(Delivery, delivery.pk, after_attempts=0, policy=notifier.POLICY)
    assert (claimed.status, claimed.attempts) == (AttemptStatus.RUNNING, 1)
    run_tasks()  # the original task finds attempt 1 taken; the lease has not ended
    assert received(crm_server) == []
    delivery.refresh_from_db()
    assert delivery.status == AttemptStatus.RUNNING

    with after_next_attempt(delivery):
        run_tasks()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.failures) == (
        AttemptStatus.SUCCEEDED,
        2,
        0,
    )
    assert len(received(crm_server)) == 1


def test_a_late_failure_report_never_undoes_a_delivery(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    run_tasks()
    delivery = Delivery.objects.get()

    attempts.record_failure(
        Delivery,
        delivery.pk,
        attempt=1,
        error="late",
        policy=notifier.POLICY,
        last_status_code=500,
    )
    attempts.record_success(Delivery, delivery.pk, last_status_code=201)

    stored = Delivery.objects.get()
    assert stored.status == AttemptStatus.SUCCEEDED
    assert stored.succeeded_at == delivery.succeeded_at
    assert (stored.last_error, stored.last_status_code, stored.failures) == ("", 200, 0)


# --- redelivery ------------------------------------------------------------------------------


def test_redeliver_sends_a_failed_delivery_again_to_the_current_url(
    settings, crm_server, paid_event
):
    crm_server.expect_request("/wrong").respond_with_data("gone", status=404)
    crm_server.expect_request("/crm").respond_with_data("ok")
    settings.CRM_WEBHOOK_URL = crm_server.url_for("/wrong")
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    run_tasks()
    delivery = Delivery.objects.get()
    assert delivery.status == AttemptStatus.GAVE_UP

    settings.CRM_WEBHOOK_URL = crm_server.url_for("/crm")
    assert notifier.redeliver(delivery_id=delivery.pk) is True
    run_tasks()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 2)
    assert delivery.target_url == crm_server.url_for("/crm")
    first, second = received(crm_server)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert notifier.redeliver(delivery_id=delivery.pk) is False  # delivered stays delivered


def test_redeliver_clears_giving_up_and_opens_a_fresh_retry_window(
    settings, crm_server, free_event
):
    settings.CRM_RETRY_HOURS = 1
    crm_server.expect_oneshot_request("/crm").respond_with_data("no", status=422)
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.book_event(user=UserFactory(), event_id=free_event.pk)
    run_tasks()
    delivery = Delivery.objects.get()
    assert delivery.status == AttemptStatus.GAVE_UP and delivery.gave_up_at is not None

    later = timezone.now() + timedelta(hours=3)  # long past the first retry window
    with time_machine.travel(later, tick=False):
        assert notifier.redeliver(delivery_id=delivery.pk) is True
        delivery.refresh_from_db()
        assert (delivery.status, delivery.gave_up_at) == (AttemptStatus.PENDING, None)
        assert delivery.retry_until == later + timedelta(hours=1)
        run_tasks()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 2)


def test_redeliver_leaves_an_attempt_under_way_alone(crm_server, paid_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.book_event(user=UserFactory(), event_id=paid_event.pk)
    delivery = Delivery.objects.get()
    attempts.claim(Delivery, delivery.pk, after_attempts=0, policy=notifier.POLICY)

    assert notifier.redeliver(delivery_id=delivery.pk) is False
    run_tasks()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.RUNNING, 1)
    assert received(crm_server) == []  # the lease's task makes the next attempt, not staff


# --- end to end ------------------------------------------------------------------------------


def test_booking_succeeds_at_once_and_its_notification_survives_an_unreachable_then_failing_crm(
    settings, crm_secret, paid_event
):
    """Unreachable, then 500, then 200: retried by the worker, delivered exactly once."""
    port = free_port()
    settings.CRM_WEBHOOK_URL = f"http://127.0.0.1:{port}/crm"
    settings.CRM_TIMEOUT_SECONDS = 2
    crm = HTTPServer(host="127.0.0.1", port=port)
    person = UserFactory()

    started = time.monotonic()
    response = client_for(person).post("/bookings/", {"event_id": paid_event.pk}, format="json")
    assert response.status_code == 201
    assert time.monotonic() - started < 2  # no network call in the request
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.PENDING, 0)

    run_tasks()  # nothing listens yet
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.last_error.startswith("network error")

    crm.expect_oneshot_request("/crm", method="POST").respond_with_data("oops", status=500)
    crm.expect_request("/crm", method="POST").respond_with_data("ok")
    crm.start()
    try:
        with after_next_attempt(delivery):
            run_tasks()
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.last_status_code) == (2, 500)

        with after_next_attempt(delivery):
            run_tasks()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 3)
        succeeded_at = delivery.succeeded_at

        # Much later: the scheduler expires the hold (a second change, so a second delivery)
        # and every leftover task has run, including the lease checks of earlier attempts.
        with time_machine.travel(timezone.now() + timedelta(days=2)):
            booking_services.expire_stale_holds()
            run_tasks()
        log = list(crm.log)
    finally:
        crm.clear()
        crm.stop()

    created, expired = Delivery.objects.order_by("sequence")
    assert created.pk == delivery.pk
    assert (created.status, created.succeeded_at) == (AttemptStatus.SUCCEEDED, succeeded_at)
    assert (expired.event_type, expired.status) == ("booking.expired", AttemptStatus.SUCCEEDED)
    # Nothing lost, nothing twice: each change once, each delivery answered 200 exactly once.
    assert BookingAudit.objects.count() == 2
    answers = [(request.headers["webhook-id"], answer.status_code) for request, answer in log]
    assert answers == [
        (created.webhook_id, 500),
        (created.webhook_id, 200),
        (expired.webhook_id, 200),
    ]
    payload = json.loads(log[1][0].get_data())
    assert (payload["booking_id"], payload["type"], payload["sequence"]) == (
        response.json()["id"],
        "booking.created",
        1,
    )


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRM_WEBHOOK_SECRET": "crmsecrettoken"}, "CRM_WEBHOOK_SECRET is the example value"),
        ({"CRM_WEBHOOK_URL": "https://crm.example/hook"}, "set CRM_WEBHOOK_SECRET too"),
    ],
)
def test_production_refuses_an_example_or_missing_crm_secret(env, message):
    from ahoum.tests.test_project import PRODUCTION_ENV, manage

    result = manage("check", env=PRODUCTION_ENV | env)

    assert result.returncode != 0
    assert message in result.stderr


def test_event_cancellation_reason_reaches_the_crm(crm_server, user):
    from bookings.services import event_cancellation

    event = EventFactory(price=0)
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.book_event(user=user, event_id=event.pk)

    event_cancellation.cancel_event(event=event, by=event.facilitator, reason="Storm warning")
    run_tasks()  # the worker settles the event's bookings, then sends their notifications

    latest = Delivery.objects.filter(event_type="booking.event_cancelled").get()
    assert latest.payload["reason"] == "event cancelled: Storm warning"
    assert latest.payload["status"] == "cancelled"
    assert latest.status == AttemptStatus.SUCCEEDED
    (sent,) = [p for p in received_json(crm_server) if p["type"] == "booking.event_cancelled"]
    assert sent == latest.payload
