"""No web request runs into gunicorn's worker timeout, and if one does, the answer is JSON.

Web processes get a statement timeout and a short, unrepeated Stripe call from gunicorn.conf.py
(the task worker and migrations keep theirs); a cancelled statement is a 503 `timeout`; a
request that still reaches the worker timeout is answered by gunicorn.conf.py's `worker_abort`
hook with a JSON 503 instead of gunicorn's HTML page.
"""

import json
import os
import runpy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from ahoum.tests.test_project import PRODUCTION_ENV, manage
from conftest import client_for
from events.tests.factories import EventFactory

BASE_DIR = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


# --- gunicorn.conf.py -----------------------------------------------------------------------


def load_gunicorn_conf(monkeypatch, **environment: str) -> dict:
    for name in ("GUNICORN_TIMEOUT", "WEB_STATEMENT_TIMEOUT_MS", "WEB_STRIPE_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))


def test_web_processes_get_limits_that_fit_the_worker_timeout(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)

    assert conf["timeout"] == 28  # under Heroku's router timeout (30 s)
    assert sorted(conf["raw_env"]) == [
        "DATABASE_STATEMENT_TIMEOUT_MS=5000",
        "STRIPE_MAX_NETWORK_RETRIES=0",
        "STRIPE_TIMEOUT_SECONDS=7",
    ]
    # Two statements cut at the statement timeout, one Stripe call (connect + read), no repeat.
    assert conf["LONGEST_REQUEST_SECONDS"] == 2 * 5 + 2 * 7 < conf["timeout"]


def test_web_limits_follow_their_variables(monkeypatch):
    conf = load_gunicorn_conf(
        monkeypatch,
        GUNICORN_TIMEOUT="60",
        WEB_STATEMENT_TIMEOUT_MS="12000",
        WEB_STRIPE_TIMEOUT_SECONDS="15",
    )

    assert "DATABASE_STATEMENT_TIMEOUT_MS=12000" in conf["raw_env"]
    assert "STRIPE_TIMEOUT_SECONDS=15" in conf["raw_env"]


@pytest.mark.parametrize(
    "environment",
    [
        {"GUNICORN_TIMEOUT": "20"},  # 24 s of waits do not fit in 20
        {"WEB_STATEMENT_TIMEOUT_MS": "10000"},  # 2 x 10 + 2 x 7 = 34 > 28
        {"WEB_STATEMENT_TIMEOUT_MS": "0"},
    ],
)
def test_gunicorn_refuses_limits_that_do_not_fit(monkeypatch, environment):
    with pytest.raises(RuntimeError):
        load_gunicorn_conf(monkeypatch, **environment)


# --- ahoum/settings.py: the statement timeout reaches each PostgreSQL connection -------------


def connection_options(**environment: str) -> dict:
    result = manage(
        "shell",
        "-c",
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))",
        env=PRODUCTION_ENV | environment,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_statement_timeout_is_a_startup_option_of_postgresql_connections():
    options = connection_options(
        DATABASE_URL="postgres://ahoum@db.example:5432/ahoum?sslmode=require",
        DATABASE_STATEMENT_TIMEOUT_MS="4000",
    )

    assert options["options"] == "-c statement_timeout=4000"
    assert options["sslmode"] == "require"  # what the URL says is kept
    assert options["server_side_binding"] is True


def test_statement_timeout_is_off_unless_set_so_workers_and_migrations_are_not_cut():
    unset = connection_options(DATABASE_URL="postgres://ahoum@db.example:5432/ahoum")
    web = connection_options(
        DATABASE_URL="postgres://ahoum@db.example:5432/ahoum", DATABASE_STATEMENT_TIMEOUT_MS="300"
    )

    assert "options" not in unset
    assert web["options"] == "-c statement_timeout=300"


# --- A statement past the timeout is a 503 `timeout` ----------------------------------------


@pytest.fixture
def web_statement_timeout():
    """The test's connection reopened with a 300 ms statement timeout, as web processes get."""
    options = connection.settings_dict["OPTIONS"]
    saved = dict(options)
    connection.close()
    options["options"] = "-c statement_timeout=300"
    yield
    connection.close()
    options.clear()
    options.update(saved)


@contextmanager
def other_connection() -> Iterator[psycopg.Connection]:
    database = connection.settings_dict
    with psycopg.connect(
        dbname=database["NAME"],
        user=database["USER"],
        password=database["PASSWORD"] or None,
        host=database["HOST"] or "127.0.0.1",
        port=database["PORT"] or 5432,
    ) as other:
        yield other
        other.rollback()


def assert_timeout_answer(response, caplog):
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "code": "timeout",
        "detail": "The database took too long to answer. Please try again in a moment.",
    }
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"
    assert any("statement timeout" in record.getMessage() for record in caplog.records)


@pytest.mark.postgres(reason="statement_timeout is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_read_past_the_statement_timeout_is_a_503(web_statement_timeout, api_client, caplog):
    EventFactory()
    with other_connection() as other:
        other.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")

        response = api_client.get("/events/?page_size=5")

    assert_timeout_answer(response, caplog)


@pytest.mark.postgres(reason="statement_timeout is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_service_statement_past_the_statement_timeout_is_a_503(
    web_statement_timeout, user, caplog
):
    event = EventFactory()
    client = client_for(user)
    with other_connection() as other:
        # The booking's row lock waits (LOCK_TIMEOUT_MS is 5 s); the statement timeout cuts it.
        other.execute("SELECT id FROM events_event WHERE id = %s FOR UPDATE", [event.pk])

        response = client.post("/bookings/", {"event_id": event.pk}, format="json")

    assert_timeout_answer(response, caplog)
    assert not event.bookings.exists()


# --- A real gunicorn: what the client gets from a request that runs too long ----------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """gunicorn with gunicorn.conf.py, a 3 s worker timeout and one sync worker, on the
    test database, serving the project plus the stalling views of crash_urls. The app is
    preloaded: a worker loading Django for longer than the timeout would be killed at boot."""
    with django_db_blocker.unblock():
        database = dict(connection.settings_dict)
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DATABASE_", "GUNICORN_", "WEB_", "STRIPE_", "LOG_"))
    } | {
        "DJANGO_SETTINGS_MODULE": "ahoum.tests.gunicorn_settings",
        "READ_DOT_ENV": "false",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_TIMEOUT": "3",
        "WEB_STATEMENT_TIMEOUT_MS": "300",
        "WEB_STRIPE_TIMEOUT_SECONDS": "0.25",
        "LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    if database["ENGINE"] == "django.db.backends.postgresql":
        credentials = database["USER"] + (
            f":{database['PASSWORD']}" if database["PASSWORD"] else ""
        )
        environment["DATABASE_URL"] = (
            f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        )
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    base_url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(GUNICORN), "--preload", "ahoum.wsgi"],
            cwd=BASE_DIR,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                requests.get(f"{base_url}/time-limits/", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, "gunicorn did not start:\n" + log.read_text()
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_request_past_the_worker_timeout_answers_json_not_gunicorns_html(gunicorn_server):
    started = time.monotonic()
    response = requests.get(f"{gunicorn_server}/stall/", timeout=30)

    assert response.status_code == 503, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["code"] == "timeout"
    assert time.monotonic() - started < 10
    # The worker stopped after answering; gunicorn's next one serves.
    assert requests.get(f"{gunicorn_server}/time-limits/", timeout=10).status_code == 200


def test_web_processes_run_with_the_web_limits(gunicorn_server):
    limits = requests.get(f"{gunicorn_server}/time-limits/", timeout=10).json()

    assert limits["statement_timeout_ms"] == 300
    assert limits["stripe_timeout_seconds"] == 0.25
    assert limits["stripe_max_network_retries"] == 0


def test_web_processes_stripe_client_does_not_repeat_calls(gunicorn_server):
    limits = requests.get(f"{gunicorn_server}/time-limits/", timeout=10).json()

    assert limits["stripe_client_max_network_retries"] == 0


@pytest.mark.postgres(reason="statement_timeout is PostgreSQL's")
def test_a_statement_in_a_web_process_is_cut_at_the_web_statement_timeout(gunicorn_server):
    started = time.monotonic()
    response = requests.get(f"{gunicorn_server}/stall-in-database/", timeout=30)

    assert response.status_code == 503, response.text[:300]
    assert response.json()["code"] == "timeout"
    assert "database" in response.json()["detail"]
    assert time.monotonic() - started < 2.5  # cut at 300 ms, before the 3 s worker timeout


def test_query_canceled_is_a_statement_timeout_and_other_errors_are_not():
    from django.db import OperationalError

    from ahoum.db import database_timeout
    from ahoum.errors import StatementTimeout

    class Cancelled(Exception):
        sqlstate = "57014"

    error = OperationalError("canceling statement due to statement timeout")
    error.__cause__ = Cancelled()

    assert isinstance(database_timeout(error), StatementTimeout)
    assert database_timeout(OperationalError("server closed the connection")) is None
