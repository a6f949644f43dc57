"""First attempts are made by dispatches woken after commit: one per period and process."""

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from bookings import services as booking_services
from conftest import client_for, run_tasks
from crm import services, tasks
from crm.models import Delivery, DeliveryStatus
from events.tests.factories import EventFactory

DISPATCH = "crm.tasks.dispatch_deliveries"
REAL_WAKE_UP = services._wake_dispatcher_after_commit  # before conftest's stand-in


@pytest.fixture
def after_commit(monkeypatch, settings):
    """The real after-commit wake-up, with a one-second period."""
    monkeypatch.setattr(services, "_wake_dispatcher_after_commit", REAL_WAKE_UP)
    settings.CRM_DISPATCH_SECONDS = 1


@pytest.fixture
def free_event(db):
    return EventFactory(price=Decimal("0"))


def dispatches() -> list[datetime]:
    return list(
        DBTaskResult.objects.filter(task_path=DISPATCH)
        .order_by("run_after")
        .values_list("run_after", flat=True)
    )


def book(event) -> None:
    booking_services.book_event(user=UserFactory(), event_id=event.pk)


def sent_booking_ids(server) -> list[int]:
    return [json.loads(request.get_data())["booking_id"] for request, _ in server.log]


@pytest.mark.django_db(transaction=True)
def test_deliveries_committed_in_one_period_share_a_dispatch(after_commit, crm_server):
    crm_server.expect_request("/crm").respond_with_data("ok")
    start = datetime(2031, 3, 1, 9, 0, 0, tzinfo=UTC)
    free_event = EventFactory(
        price=Decimal("0"), starts_at=start + timedelta(days=30), ends_at=start + timedelta(days=31)
    )

    with time_machine.travel(start, tick=False):
        book(free_event)
    with time_machine.travel(start + timedelta(seconds=0.4), tick=False):
        book(free_event)  # the dispatch due at +1 s is half a period away or more: it will do
    with time_machine.travel(start + timedelta(seconds=0.6), tick=False):
        book(free_event)  # due in 0.4 s: too close to count on, so a new one

    assert dispatches() == [start + timedelta(seconds=1), start + timedelta(seconds=1.6)]
    assert Delivery.objects.count() == 3
    with time_machine.travel(start + timedelta(seconds=0.9), tick=False):
        run_tasks()
    assert sent_booking_ids(crm_server) == []  # no dispatch due yet

    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        run_tasks()
    assert len(sent_booking_ids(crm_server)) == 3  # the first dispatch took all three
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    with time_machine.travel(start + timedelta(seconds=1.6), tick=False):
        run_tasks()
    assert len(sent_booking_ids(crm_server)) == 3  # the second found nothing left


@pytest.mark.django_db(transaction=True)
def test_a_change_that_rolls_back_leaves_no_delivery_and_wakes_nothing(
    after_commit, crm_server, free_event, monkeypatch
):
    def fail(event_id):
        raise OperationalError("the connection dropped")

    monkeypatch.setattr(booking_services, "_claim_a_seat", fail)  # after the delivery's INSERT
    with pytest.raises(OperationalError):
        book(free_event)

    assert Delivery.objects.count() == 0
    assert dispatches() == []


@pytest.mark.django_db(transaction=True)
def test_a_failed_wake_up_never_fails_the_committed_booking_and_the_next_dispatch_sends_it(
    after_commit, crm_server, free_event, monkeypatch, caplog
):
    crm_server.expect_request("/crm").respond_with_data("ok")

    class DatabaseGone:
        def using(self, **options):
            raise OperationalError("could not connect to server")

    monkeypatch.setattr(tasks, "dispatch_deliveries", DatabaseGone())
    with caplog.at_level(logging.ERROR):
        response = client_for(UserFactory()).post(
            "/bookings/", {"event_id": free_event.pk}, format="json"
        )

    assert response.status_code == 201
    assert "wake_dispatcher" in caplog.text
    (delivery,) = Delivery.objects.all()
    assert delivery.status == DeliveryStatus.PENDING and dispatches() == []

    monkeypatch.undo()
    assert services.dispatch_first_attempts() == 1
    assert sent_booking_ids(crm_server) == [response.json()["id"]]


@pytest.mark.django_db
def test_a_full_batch_enqueues_the_next_dispatch_first(crm_server, free_event):
    crm_server.expect_request("/crm").respond_with_data("ok")
    for _ in range(3):
        book(free_event)
    DBTaskResult.objects.all().delete()

    assert services.dispatch_first_attempts(limit=2) == 2

    assert DBTaskResult.objects.ready().filter(task_path=DISPATCH).count() == 1
    run_tasks()
    assert len(sent_booking_ids(crm_server)) == 3
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_a_dispatch_skips_deliveries_whose_first_attempt_is_taken_or_not_due(
    crm_server, free_event
):
    crm_server.expect_request("/crm").respond_with_data("ok")
    book(free_event)
    book(free_event)
    running, scheduled = Delivery.objects.order_by("pk")
    assert services._claim_attempt(delivery_id=running.pk, after_attempts=0) is not None
    Delivery.objects.filter(pk=scheduled.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )

    assert services.dispatch_first_attempts() == 0
    assert sent_booking_ids(crm_server) == []


@pytest.mark.django_db
def test_the_dispatch_command_attempts_every_waiting_delivery(crm_server, free_event, capsys):
    from django.core.management import call_command

    crm_server.expect_request("/crm").respond_with_data("ok")
    for _ in range(3):
        book(free_event)
    DBTaskResult.objects.all().delete()  # as if every wake-up was lost

    call_command("dispatch_deliveries")

    assert "3 deliveries attempted" in capsys.readouterr().out
    assert len(sent_booking_ids(crm_server)) == 3
