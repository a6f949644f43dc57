"""Refresh token rotation under real concurrency: separate database connections presenting
one refresh token at the same instant."""

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.serializers import issue_tokens
from accounts.tests.factories import UserFactory

RACERS = 8
ROUNDS = 5


def rush_refresh(refresh_token: str) -> tuple[Counter, list[str]]:
    """RACERS clients POST /auth/refresh with `refresh_token` at once, each thread on its own
    database connection. The outcomes, and the refresh tokens the winners received."""
    start = threading.Barrier(RACERS)
    outcomes: Counter = Counter()
    issued: list[str] = []
    lock = threading.Lock()

    def attempt():
        try:
            start.wait(timeout=30)
            response = APIClient().post("/auth/refresh", {"refresh_token": refresh_token})
            body = response.json()
            with lock:
                outcomes[(response.status_code, body.get("code", ""))] += 1
                if response.status_code == 200:
                    issued.append(body["refresh_token"])
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a refresh hung"
    return outcomes, issued


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_with_one_token_give_exactly_one_new_pair(settings):
    """Runs on SQLite and, with DATABASE_URL=postgres://..., on PostgreSQL (row locks, truly
    parallel transactions); a few rounds, since a lost race needs the right interleaving."""
    settings.AUTH_THROTTLE_RATE = "10000/minute"
    person = UserFactory()

    for _ in range(ROUNDS):
        outstanding_before = OutstandingToken.objects.count()
        refresh_token = issue_tokens(person)["refresh_token"]

        outcomes, issued = rush_refresh(refresh_token)

        assert outcomes == {(200, ""): 1, (401, "token_not_valid"): RACERS - 1}
        # The losers wrote nothing: one token was blacklisted and one new one issued.
        assert OutstandingToken.objects.count() == outstanding_before + 2
        jti = RefreshToken(refresh_token, verify=False)["jti"]
        assert BlacklistedToken.objects.filter(token__jti=jti).count() == 1
        again = APIClient().post("/auth/refresh", {"refresh_token": issued[0]})
        assert again.status_code == 200
