"""The signed-in user comes from the shared cache, and is never staler than the database."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.authentication import _key
from accounts.models import Role
from conftest import client_for

pytestmark = pytest.mark.django_db


def user_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/auth/me").status_code == 200
    return sum('"accounts_user"' in query["sql"] for query in captured)


def test_the_second_request_reads_no_user_row(user):
    client = client_for(user)

    assert user_queries(client) == 1
    assert user_queries(client) == 0
    assert client.get("/auth/me").json()["email"] == user.email


def test_the_cache_holds_no_password_hash(user):
    client_for(user).get("/auth/me")

    cached = cache.get(_key(user.pk))
    assert user.password not in cached
    assert set(cached) >= {user.email, user.name, user.role}


def test_a_deactivated_user_is_refused_at_once(user):
    client = client_for(user)
    client.get("/auth/me")

    user.is_active = False
    user.save()

    assert client.get("/auth/me").status_code == 401


def test_a_new_role_counts_at_once(user):
    client = client_for(user)
    assert client.get("/facilitator/events").status_code == 403

    user.role = Role.FACILITATOR
    user.save()

    assert client.get("/facilitator/events").status_code == 200


def test_a_deleted_user_is_refused_at_once(user):
    client = client_for(user)
    client.get("/auth/me")

    user.delete()

    assert client.get("/auth/me").status_code == 401


def test_fields_not_cached_load_from_the_database(user):
    client = client_for(user)
    client.get("/auth/me")

    with CaptureQueriesContext(connection):
        response = client.post(
            "/auth/password", {"current_password": "wrong", "new_password": "x" * 20}
        )

    assert response.status_code == 400  # the password hash was loaded and compared


def test_off_without_a_shared_cache(user, settings):
    settings.AUTH_USER_CACHE_SECONDS = 0
    client = client_for(user)
    client.get("/auth/me")

    assert user_queries(client) == 1
