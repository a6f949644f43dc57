"""Login and registration limits that a client cannot dodge: per address (whatever it puts in
X-Forwarded-For) and per account (whatever address it comes from)."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_login_failed
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import TEST_PASSWORD, FacilitatorFactory, UserFactory
from conftest import client_for

pytestmark = pytest.mark.django_db

STRONG = "a-Strong-passphrase-91"
NEW_PASSWORD = "a-fresh-passphrase-of-mine-77"


def login(client, email, password=TEST_PASSWORD, **extra):
    return client.post("/auth/login", {"email": email, "password": password}, **extra)


def forged(i: int) -> str:
    """A different made-up X-Forwarded-For on every request, as an attacker sends."""
    return f"198.18.{i // 250}.{i % 250 + 1}, 10.{i % 200}.0.1"


# --- per client address: X-Forwarded-For -------------------------------------------------------


def test_num_proxies_zero_means_trust_no_forwarded_header():
    """NUM_PROXIES=0 (the .env.example value) must reach DRF as 0, not as None: DRF takes
    None to mean "use the whole X-Forwarded-For header", which the client writes."""
    environment = {**os.environ, "NUM_PROXIES": "0", "DJANGO_SETTINGS_MODULE": "ahoum.settings"}
    environment.update(DEBUG="true", READ_DOT_ENV="false")
    code = "from django.conf import settings; print(repr(settings.REST_FRAMEWORK['NUM_PROXIES']))"

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        cwd=django_settings.BASE_DIR,
    )

    assert result.stdout.strip() == "0"


def test_forged_x_forwarded_for_cannot_dodge_the_login_throttle_without_a_proxy(
    api_client, settings
):
    settings.AUTH_THROTTLE_RATE = "3/minute"

    statuses = [
        # A new email each time: only the per-address throttle is in play.
        login(api_client, f"p{i}@example.com", "wrong", HTTP_X_FORWARDED_FOR=forged(i)).status_code
        for i in range(6)
    ]

    assert statuses == [401, 401, 401, 429, 429, 429]


def test_forged_x_forwarded_for_cannot_dodge_the_registration_throttle(api_client, settings):
    settings.AUTH_THROTTLE_RATE = "2/minute"

    statuses = [
        api_client.post(
            "/auth/register",
            {"email": f"p{i}@example.com", "password": STRONG, "name": "Spam"},
            HTTP_X_FORWARDED_FOR=forged(i),
        ).status_code
        for i in range(4)
    ]

    assert statuses == [201, 201, 429, 429]


def test_behind_one_proxy_the_address_the_proxy_appended_is_throttled(api_client, settings):
    """The proxy appends the address it saw to whatever X-Forwarded-For the client sent: that
    last entry is the client, the rest is the client's own writing."""
    settings.AUTH_THROTTLE_RATE = "3/minute"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = {"REMOTE_ADDR": "10.1.2.3"}

    attacker = [
        login(
            api_client,
            f"p{i}@example.com",
            "wrong",
            HTTP_X_FORWARDED_FOR=f"{forged(i)}, 203.0.113.7",
            **proxy,
        ).status_code
        for i in range(6)
    ]
    someone_else = login(
        api_client, "q@example.com", "wrong", HTTP_X_FORWARDED_FOR="203.0.113.8", **proxy
    )

    assert attacker == [401, 401, 401, 429, 429, 429]
    assert someone_else.status_code == 401  # another client behind the same proxy is not blocked


# --- per account ---------------------------------------------------------------------------------


@pytest.fixture
def per_account(settings):
    """Three failures lock an email for 15 minutes; the per-address throttle out of the way."""
    settings.AUTH_THROTTLE_RATE = "1000/minute"
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_WINDOW_MINUTES = 15
    return settings


def fail(api_client, email, times, start=0):
    """`times` wrong passwords for `email`, each from a different client address."""
    return [
        login(api_client, email, "wrong", REMOTE_ADDR=f"203.0.113.{start + i + 1}").status_code
        for i in range(times)
    ]


def test_failed_logins_lock_the_email_whatever_the_address_and_spelling(api_client, per_account):
    UserFactory(email="alice@example.com")
    other = UserFactory(email="bob@example.com")

    spellings = ["alice@example.com", "Alice@Example.COM", "  ALICE@example.com "]
    failures = [fail(api_client, email, 1, start=i)[0] for i, email in enumerate(spellings)]
    locked = login(api_client, "alice@example.com", REMOTE_ADDR="198.51.100.1")

    assert failures == [401, 401, 401]
    assert locked.status_code == 429  # even with the right password, from a new address
    assert locked.json()["code"] == "throttled"
    assert 0 < int(locked["Retry-After"]) <= 15 * 60
    assert "access_token" not in locked.json()
    assert login(api_client, other.email).status_code == 200  # other accounts are unaffected


def test_lockout_answers_existing_and_unknown_emails_alike(
    api_client, per_account, django_assert_num_queries
):
    UserFactory(email="alice@example.com")
    credential_checks = []

    def count(**kwargs):
        credential_checks.append(kwargs["credentials"])

    with time_machine.travel(timezone.now(), tick=False):
        assert fail(api_client, "alice@example.com", 3) == fail(api_client, "nobody@x.com", 3)
        user_login_failed.connect(count)
        try:
            # No query and no password hashing: the answer takes the same time either way.
            with django_assert_num_queries(0):
                existing = login(api_client, "alice@example.com", REMOTE_ADDR="198.51.100.1")
            with django_assert_num_queries(0):
                unknown = login(api_client, "nobody@x.com", REMOTE_ADDR="198.51.100.2")
        finally:
            user_login_failed.disconnect(count)

    assert existing.status_code == unknown.status_code == 429
    assert existing.content == unknown.content
    assert existing["Retry-After"] == unknown["Retry-After"]
    assert credential_checks == []


def test_lockout_ends_when_the_window_ends(api_client, per_account):
    UserFactory(email="alice@example.com")
    start = timezone.now().replace(microsecond=0)  # whole seconds: an exact Retry-After

    with time_machine.travel(start, tick=False):
        fail(api_client, "alice@example.com", 3)
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        still_locked = login(api_client, "alice@example.com")
    with time_machine.travel(start + timedelta(minutes=15, seconds=1), tick=False):
        after = login(api_client, "alice@example.com")

    assert still_locked.status_code == 429
    assert int(still_locked["Retry-After"]) == 60
    assert after.status_code == 200


def test_successful_login_clears_the_failures(api_client, per_account):
    UserFactory(email="alice@example.com")

    before = fail(api_client, "alice@example.com", 2)
    success = login(api_client, "alice@example.com")
    after = fail(api_client, "alice@example.com", 4)

    assert before == [401, 401]
    assert success.status_code == 200
    assert after == [401, 401, 401, 429]


def test_password_change_clears_the_lockout(api_client, per_account):
    person = UserFactory(email="alice@example.com")
    signed_in = client_for(person)  # a session from before the lockout

    fail(api_client, "alice@example.com", 3)
    locked = login(api_client, "alice@example.com")
    changed = signed_in.post(
        "/auth/password", {"new_password": NEW_PASSWORD, "current_password": TEST_PASSWORD}
    )

    assert locked.status_code == 429
    assert changed.status_code == 200
    assert login(api_client, "alice@example.com", NEW_PASSWORD).status_code == 200


# --- the admin sites' sign-in forms count towards the same limit ---------------------------


def api_login(api_client, email, password, n=0):
    return api_client.post(
        "/auth/login", {"email": email, "password": password}, REMOTE_ADDR=f"203.0.113.{n + 1}"
    )


def form_login(path, email, password):
    return Client().post(path, {"username": email, "password": password, "next": path})


def test_backoffice_login_is_refused_while_the_email_is_locked_out(api_client, per_account):
    facilitator = FacilitatorFactory(email="fac@example.com")
    for n in range(4):
        api_login(api_client, facilitator.email, "wrong", n)
    assert api_login(api_client, facilitator.email, TEST_PASSWORD).status_code == 429

    response = form_login("/backoffice/login/", facilitator.email, TEST_PASSWORD)

    assert response.status_code != 302, "the back office let a locked-out email sign in"


def test_wrong_passwords_at_the_backoffice_count_towards_the_lockout(api_client, per_account):
    facilitator = FacilitatorFactory(email="fac@example.com")
    for n in range(20):
        form_login("/backoffice/login/", facilitator.email, f"guess-{n}")

    assert api_login(api_client, facilitator.email, TEST_PASSWORD).status_code == 429


def test_wrong_passwords_at_the_admin_count_towards_the_lockout(api_client, per_account):
    staff = UserFactory(email="staff@example.com", is_staff=True)
    for n in range(20):
        form_login("/admin/login/", staff.email, f"guess-{n}")

    assert api_login(api_client, staff.email, TEST_PASSWORD).status_code == 429


def test_backoffice_login_does_not_tell_a_right_password_from_a_wrong_one(db):
    person = UserFactory(email="plain@example.com")  # not a facilitator

    right = form_login("/backoffice/login/", person.email, TEST_PASSWORD)
    wrong = form_login("/backoffice/login/", person.email, "not-the-password")

    def errors(response):
        return [str(e) for e in response.context["form"].non_field_errors()]

    assert errors(right) == errors(wrong)
