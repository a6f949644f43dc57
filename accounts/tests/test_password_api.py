"""POST /auth/password: how a person whose password Google login disabled sets a new one."""

import pytest

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from conftest import client_for

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-fresh-passphrase-of-mine-77"


def login(api_client, email, password):
    return api_client.post("/auth/login", {"email": email, "password": password})


def test_account_without_password_sets_one_with_its_token_alone(api_client):
    person = User.objects.create_user("google@example.com", None, name="Google Person")

    response = client_for(person).post("/auth/password", {"new_password": NEW_PASSWORD})

    assert response.status_code == 200
    assert {"access_token", "refresh_token"} <= set(response.json())
    assert login(api_client, "google@example.com", NEW_PASSWORD).status_code == 200


def test_account_with_password_must_confirm_it(api_client, user):
    client = client_for(user)

    missing = client.post("/auth/password", {"new_password": NEW_PASSWORD})
    wrong = client.post(
        "/auth/password", {"new_password": NEW_PASSWORD, "current_password": "not-it"}
    )
    right = client.post(
        "/auth/password", {"new_password": NEW_PASSWORD, "current_password": TEST_PASSWORD}
    )

    assert missing.status_code == wrong.status_code == 400
    assert wrong.json()["code"] == "wrong_password"
    assert "current_password" in wrong.json()["fields"]
    assert right.status_code == 200
    assert login(api_client, user.email, NEW_PASSWORD).status_code == 200
    assert login(api_client, user.email, TEST_PASSWORD).status_code == 401


def test_weak_password_is_400_and_nothing_changes(user):
    response = client_for(user).post(
        "/auth/password", {"new_password": "12345678", "current_password": TEST_PASSWORD}
    )

    assert response.status_code == 400
    assert "new_password" in response.json()["fields"]
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


def test_new_password_revokes_refresh_tokens_issued_before(api_client):
    person = UserFactory(email="alice@example.com")
    earlier = login(api_client, "alice@example.com", TEST_PASSWORD).json()

    response = client_for(person).post(
        "/auth/password", {"new_password": NEW_PASSWORD, "current_password": TEST_PASSWORD}
    )

    stale = api_client.post("/auth/refresh", {"refresh_token": earlier["refresh_token"]})
    fresh = api_client.post("/auth/refresh", {"refresh_token": response.json()["refresh_token"]})
    assert stale.status_code == 401
    assert fresh.status_code == 200


def test_anonymous_is_401(api_client):
    response = api_client.post("/auth/password", {"new_password": NEW_PASSWORD})

    assert response.status_code == 401
