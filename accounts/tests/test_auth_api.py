from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Role, User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from conftest import client_for

pytestmark = pytest.mark.django_db

STRONG = "a-Strong-passphrase-91"


def register(client, **overrides):
    body = {"email": "new@example.com", "password": STRONG, "name": "New Person"} | overrides
    return client.post("/auth/register", body, format="json")


def login(client, email, password=TEST_PASSWORD):
    return client.post("/auth/login", {"email": email, "password": password}, format="json")


# --- registration -----------------------------------------------------------------------------


def test_register_creates_user_with_default_role_and_no_password_in_response(api_client):
    response = register(api_client)

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "new@example.com"
    assert body["role"] == "user"
    assert "password" not in body
    assert STRONG not in response.content.decode()
    assert User.objects.get(email="new@example.com").check_password(STRONG)


def test_register_as_facilitator(api_client):
    response = register(api_client, role="facilitator")

    assert response.status_code == 201
    assert User.objects.get(email="new@example.com").role == Role.FACILITATOR


def test_register_duplicate_email_in_other_case_is_400_on_email(api_client):
    UserFactory(email="alice@x.com")

    response = register(api_client, email="Alice@X.com")

    assert response.status_code == 400
    assert response.json()["code"] == "email_taken"
    assert "email" in response.json()["fields"]
    assert User.objects.filter(email__iexact="alice@x.com").count() == 1


def test_register_weak_password_is_400_on_password(api_client):
    response = register(api_client, password="12345678")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "password" in response.json()["fields"]
    assert not User.objects.exists()


@pytest.mark.parametrize("role", ["admin", "staff", ""])
def test_register_role_other_than_user_or_facilitator_is_400(api_client, role):
    response = register(api_client, role=role)

    assert response.status_code == 400
    assert "role" in response.json()["fields"]
    assert not User.objects.exists()


def test_register_missing_fields_are_each_named(api_client):
    response = api_client.post("/auth/register", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"email", "password", "name"}


def test_register_cannot_make_staff(api_client):
    response = register(api_client, is_staff=True, is_superuser=True)

    assert response.status_code == 201
    user = User.objects.get(email="new@example.com")
    assert not user.is_staff and not user.is_superuser


def test_email_is_unique_case_insensitively_in_the_database():
    from django.db import IntegrityError, transaction

    UserFactory(email="bob@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        # update() skips save()'s normalisation: the functional unique index still refuses it.
        other = UserFactory(email="other@example.com")
        User.objects.filter(pk=other.pk).update(email="BOB@example.com")


# --- login ------------------------------------------------------------------------------------


def test_login_returns_token_pair_with_role(api_client):
    import jwt
    from django.conf import settings

    person = UserFactory(email="alice@example.com", role=Role.FACILITATOR)

    response = login(api_client, "Alice@Example.COM")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == int(settings.ACCESS_TOKEN_LIFETIME.total_seconds())
    claims = jwt.decode(body["access_token"], settings.JWT_SECRET_KEY, algorithms=["HS256"])
    assert claims["role"] == "facilitator"
    assert claims["user_id"] == str(person.pk)


def test_wrong_password_and_unknown_email_give_the_same_401(api_client):
    UserFactory(email="alice@example.com")

    wrong_password = login(api_client, "alice@example.com", "not-the-password")
    unknown_email = login(api_client, "nobody@example.com")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()


def test_inactive_user_cannot_log_in(api_client):
    UserFactory(email="gone@example.com", is_active=False)

    assert login(api_client, "gone@example.com").status_code == 401


def test_login_missing_fields_is_400(api_client):
    response = api_client.post("/auth/login", {"email": "a@b.c"}, format="json")

    assert response.status_code == 400
    assert "password" in response.json()["fields"]


# --- refresh and logout -----------------------------------------------------------------------


def test_refresh_rotates_and_a_used_refresh_token_is_refused(api_client, user):
    first = login(api_client, user.email).json()

    rotated = api_client.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    reused = api_client.post("/auth/refresh", {"refresh_token": first["refresh_token"]})

    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != first["refresh_token"]
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_not_valid"
    # the new pair works
    again = api_client.post("/auth/refresh", {"refresh_token": rotated.json()["refresh_token"]})
    assert again.status_code == 200


def test_refresh_with_garbage_is_401(api_client):
    response = api_client.post("/auth/refresh", {"refresh_token": "not-a-token"})

    assert response.status_code == 401


def test_refresh_for_deleted_user_is_401(api_client, user):
    tokens = login(api_client, user.email).json()
    user.delete()

    response = api_client.post("/auth/refresh", {"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 401


def test_logout_blacklists_the_refresh_token(api_client, user):
    tokens = login(api_client, user.email).json()

    logout = api_client.post("/auth/logout", {"refresh_token": tokens["refresh_token"]})
    refresh = api_client.post("/auth/refresh", {"refresh_token": tokens["refresh_token"]})

    assert logout.status_code == 204
    assert refresh.status_code == 401


def test_logout_with_invalid_token_is_401(api_client):
    response = api_client.post("/auth/logout", {"refresh_token": "garbage"})

    assert response.status_code == 401


# --- access tokens and /auth/me ---------------------------------------------------------------


def test_me_returns_the_current_user(user):
    response = client_for(user).get("/auth/me")

    assert response.status_code == 200
    assert response.json()["email"] == user.email
    assert response.json()["role"] == "user"


def test_me_anonymous_is_401(api_client):
    response = api_client.get("/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_expired_access_token_is_401(user):
    client = client_for(user)
    later = timezone.now() + timezone.timedelta(minutes=16)

    with time_machine.travel(later, tick=False):
        response = client.get("/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_access_token_still_valid_before_expiry(user):
    client = client_for(user)

    with time_machine.travel(timezone.now() + timedelta(minutes=14), tick=False):
        assert client.get("/auth/me").status_code == 200


# --- throttling ---------------------------------------------------------------------------------


def test_login_is_throttled_per_client_with_retry_after(api_client, settings):
    settings.AUTH_THROTTLE_RATE = "3/minute"
    UserFactory(email="alice@example.com")

    statuses = [login(api_client, "alice@example.com", "wrong").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
    blocked = login(api_client, "alice@example.com")
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "throttled"
    assert int(blocked["Retry-After"]) > 0


def test_register_is_throttled(api_client, settings):
    settings.AUTH_THROTTLE_RATE = "2/minute"

    statuses = [register(api_client, email=f"p{i}@example.com").status_code for i in range(3)]

    assert statuses == [201, 201, 429]
