"""`ahoum.task_backend`: the same task rows as django-tasks-db's backend, in one compiled INSERT."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext
from django_tasks import task_backends
from django_tasks_db import signal_handlers
from django_tasks_db.backend import DatabaseBackend as StockDatabaseBackend
from django_tasks_db.models import DBTaskResult

from ahoum.task_backend import DatabaseBackend
from bookings import tasks
from conftest import run_tasks

pytestmark = pytest.mark.django_db

SAME_EXCEPT = {"id", "enqueued_at"}


def row(result) -> dict:
    stored = DBTaskResult.objects.filter(pk=result.id).values().get()
    return {key: value for key, value in stored.items() if key not in SAME_EXCEPT}


def test_the_project_enqueues_through_this_backend():
    assert type(task_backends["default"]) is DatabaseBackend


@pytest.mark.parametrize(
    "task",
    [
        tasks.send_booking_email,  # as soon as possible: run_after left empty
        tasks.process_refund.using(run_after=datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)),
        tasks.send_booking_email.using(priority=7),
    ],
)
def test_rows_are_the_stock_backends_rows(task):
    stock = StockDatabaseBackend("default", {})
    ours = task_backends["default"]

    with CaptureQueriesContext(connection) as queries:
        result = ours.enqueue(task, (41, 2), {})
    expected = stock.enqueue(task, (41, 2), {})

    assert len(queries) == 1 and queries[0]["sql"].upper().startswith("INSERT")
    assert row(result) == row(expected)
    assert result.status == expected.status == "READY"
    assert result.args == [41, 2] and result.task.module_path == task.module_path


def test_enqueued_tasks_run_in_the_worker():
    result = tasks.expire_lapsed_holds.enqueue()

    run_tasks()

    assert DBTaskResult.objects.get(pk=result.id).status == "SUCCESSFUL"


def test_the_only_save_receiver_of_task_rows_is_the_one_applied_here():
    """The compiled INSERT sends no save signals: a receiver django-tasks-db adds in an
    upgrade would silently not run, so it must be looked at (and applied) first."""
    sync_receivers, async_receivers = pre_save._live_receivers(DBTaskResult)
    assert sync_receivers == [signal_handlers.set_run_after] and not async_receivers
    assert not post_save.has_listeners(DBTaskResult)
