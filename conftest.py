"""Fixtures shared by every app's tests."""

import os

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from accounts.serializers import issue_tokens
from accounts.tests.factories import FacilitatorFactory, UserFactory

pytest_plugins = ["fakes.pytest_fixtures"]

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_collection_modifyitems(config, items):
    skips = {}
    if not ON_POSTGRES:
        skips["postgres"] = "needs PostgreSQL: run with DATABASE_URL=postgres://..."
    if not os.environ.get("TEST_REDIS_URL"):
        skips["redis"] = "needs Redis: run with TEST_REDIS_URL=redis://127.0.0.1:6379/13"
    for item in items:
        for marker, reason in skips.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters live in the cache; every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(user) -> APIClient:
    """An API client authenticated as `user` with a real JWT."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_tokens(user)['access_token']}")
    return client


def clients_by_role(owner) -> dict:
    """A client per kind of caller of a permission matrix; None is anonymous."""
    return {
        "anonymous": None,
        "user": client_for(UserFactory()),
        "other_facilitator": client_for(FacilitatorFactory()),
        "owner": client_for(owner),
        "staff": client_for(UserFactory(is_staff=True)),
    }


def assert_renders_like_drf(serializer_class, instance) -> None:
    """A hand-written `to_representation` gives the same JSON as DRF's generic one."""
    serializer = serializer_class(instance)
    generic = serializers.ModelSerializer.to_representation(serializer, instance)
    assert JSONRenderer().render(serializer.data) == JSONRenderer().render(generic)


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def facilitator(db):
    return FacilitatorFactory()


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, name="Staff Member")


@pytest.fixture
def user_client(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def facilitator_client(facilitator) -> APIClient:
    return client_for(facilitator)


@pytest.fixture
def staff_client(staff) -> APIClient:
    return client_for(staff)


def run_tasks() -> int:
    """Run every task that is due, with the real database backend and worker (`db_worker`).

    Tasks enqueued by tasks run too. A failed task fails the test with its traceback. Like
    Django's test client, this keeps the worker from closing the test's database connection
    (which holds the test's transaction) between tasks.
    """
    from unittest import mock

    from django.core.management import call_command
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.models import DBTaskResult

    before = set(DBTaskResult.objects.filter(status="FAILED").values_list("id", flat=True))
    done_before = DBTaskResult.objects.exclude(status="READY").count()
    with mock.patch.object(db_worker, "close_old_connections", lambda: None):
        call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)
    failed = DBTaskResult.objects.filter(status="FAILED").exclude(id__in=before)
    if failed:
        raise AssertionError("task failed:\n" + "\n".join(t.traceback for t in failed))
    return DBTaskResult.objects.exclude(status="READY").count() - done_before


def run_tasks_until(moment, *, max_rounds: int = 500) -> int:
    """Run the worker as time passes up to `moment`: each task once it falls due.

    Travels (time_machine) to each scheduled task's `run_after` in turn, so retries with
    backoff and lease take-overs run as they would in production. How many tasks ran.
    """
    from datetime import timedelta

    import time_machine
    from django_tasks_db.models import DBTaskResult, get_date_max

    ran = run_tasks()
    for _ in range(max_rounds):
        upcoming = (
            DBTaskResult.objects.filter(status="READY")
            .exclude(run_after=get_date_max())
            .order_by("run_after")
            .values_list("run_after", flat=True)
            .first()
        )
        if upcoming is None or upcoming > moment:
            return ran
        with time_machine.travel(upcoming + timedelta(seconds=1), tick=False):
            ran += run_tasks()
    raise AssertionError(f"tasks still due after {max_rounds} rounds")
