"""Bearer tokens on every request: the user is read (once) and checked each time."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from conftest import client_for

pytestmark = pytest.mark.django_db


def bearer(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_valid_token_reads_its_user_in_one_query_and_answers_as_them():
    user = UserFactory(email="me@example.com", name="Me")
    client = client_for(user)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/auth/me")

    assert response.status_code == 200
    assert response.json()["email"] == "me@example.com"
    assert len(queries) == 1
    assert "accounts_user" in queries[0]["sql"]


def test_a_user_deactivated_after_login_is_refused_at_once():
    user = UserFactory()
    client = client_for(user)
    user.is_active = False
    user.save()

    response = client.get("/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "user_inactive"


def test_a_deleted_user_is_refused():
    user = UserFactory()
    client = client_for(user)
    user.delete()

    response = client.get("/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "user_not_found"


@pytest.mark.parametrize("claims", [{}, {"user_id": "not-a-number"}])
def test_a_token_without_a_usable_user_id_is_refused(claims):
    token = AccessToken()
    token.payload.pop("user_id", None)
    token.payload.update(claims)

    response = bearer(token).get("/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_tampered_token_is_refused():
    user, other = UserFactory(), UserFactory()
    token = AccessToken.for_user(user)
    header, _, signature = str(token).split(".")
    forged = AccessToken.for_user(other)
    forged_payload = str(forged).split(".")[1]

    response = bearer(f"{header}.{forged_payload}.{signature}").get("/auth/me")

    assert response.status_code == 401
