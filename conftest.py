"""Fixtures shared by every app's tests."""

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.serializers import issue_tokens
from accounts.tests.factories import FacilitatorFactory, UserFactory

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_collection_modifyitems(config, items):
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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
