"""`manage.py run_worker` goes on processing tasks after the database went away and came back.

The end-to-end tests run the command as a real process against the test database and cut it
off: new connections are refused (`ALLOW_CONNECTIONS false`) and the worker's own are
terminated until it has noticed. Terminating an idle worker's connection once is not enough:
with `CONN_HEALTH_CHECKS` Django replaces a dead connection on the next poll by itself, and
the library's worker only dies when the connection breaks between that check and its
queries, or cannot be opened again, as in a real outage.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import InterfaceError, OperationalError, ProgrammingError, connection

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from ahoum.management.commands import run_worker
from bookings import services
from bookings.models import Booking, BookingEmail, BookingStatus
from events.tests.factories import EventFactory

BASE_DIR = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 30
# The worker processes' connections carry this name, so only they are cut off.
APPLICATION_NAME = f"ahoum-test-run-worker-{os.getpid()}"
LOST = "worker lost the database"


# --- The loop, with the library's worker and the clock replaced ----------------------------


class FakeClock:
    """Stands for the `time` module in run_worker: sleeping only moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(run_worker, "time", clock)
    return clock


def fake_worker(monkeypatch, *outcomes: BaseException | None, runs_for: float = 0, clock=None):
    """Replace run_worker's `call_command`: each run raises the next outcome (None returns).

    The last outcome repeats. Each run first lasts `runs_for` seconds on the fake clock.
    """
    calls: list[tuple[str, dict]] = []

    def call(name: str, **options) -> None:
        calls.append((name, options))
        if clock is not None:
            clock.now += runs_for
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(run_worker, "call_command", call)
    return calls


def test_worker_runs_again_after_each_lost_connection_waiting_longer_each_time(
    monkeypatch, clock, caplog
):
    calls = fake_worker(
        monkeypatch,
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
        None,
    )

    call_command("run_worker", "--interval", "0.2", "--queue-name", "emails", verbosity=0)

    assert len(calls) == 3
    assert calls[0] == (
        "db_worker",
        {
            "interval": 0.2,
            "queue_name": "emails",
            "startup_delay": False,
            "reload": False,
            "verbosity": 0,
        },
    )
    assert clock.waits == [0.5, 1.0]
    losses = [record.getMessage() for record in caplog.records if LOST in record.getMessage()]
    assert losses == [
        f"{LOST} (server closed the connection unexpectedly); reconnecting in 0.5 s",
        f"{LOST} (connection already closed); reconnecting in 1.0 s",
    ]


def test_waits_double_up_to_max_wait_and_start_small_again_after_a_long_healthy_run(
    monkeypatch, clock
):
    fake_worker(monkeypatch, OperationalError("gone"), clock=clock)
    with pytest.raises(OperationalError):
        call_command("run_worker", "--max-wait", "3", "--max-restarts", "6", verbosity=0)
    assert clock.waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]

    # Each run worked for over a minute before the database went: every outage is a new one.
    clock.waits.clear()
    fake_worker(monkeypatch, OperationalError("gone"), runs_for=61, clock=clock)
    with pytest.raises(OperationalError):
        call_command("run_worker", "--max-restarts", "3", verbosity=0)
    assert clock.waits == [0.5, 0.5, 0.5]


def test_max_restarts_reraises_the_database_error_once_used_up(monkeypatch, clock):
    calls = fake_worker(monkeypatch, OperationalError("the database is still away"))

    with pytest.raises(OperationalError, match="still away"):
        call_command("run_worker", "--max-restarts", "2", verbosity=0)

    assert len(calls) == 3  # the first run and two restarts
    assert clock.waits == [0.5, 1.0]


@pytest.mark.parametrize("code", [0, 1])
def test_system_exit_from_the_worker_stops_the_command(monkeypatch, clock, code):
    """The library's signal handlers exit with SystemExit; it is never taken for a loss."""
    calls = fake_worker(monkeypatch, OperationalError("gone"), SystemExit(code))

    with pytest.raises(SystemExit) as raised:
        call_command("run_worker", verbosity=0)

    assert raised.value.code == code
    assert len(calls) == 2
    assert clock.waits == [0.5]


def test_signal_while_waiting_to_reconnect_stops_the_command(monkeypatch, clock):
    """A SIGTERM during the wait runs the last worker's handler, which raises SystemExit."""
    calls = fake_worker(monkeypatch, OperationalError("gone"))

    def stopped(seconds: float) -> None:
        raise SystemExit(0)

    monkeypatch.setattr(clock, "sleep", stopped)
    with pytest.raises(SystemExit):
        call_command("run_worker", verbosity=0)
    assert len(calls) == 1


def test_other_errors_are_not_taken_for_a_lost_database(monkeypatch, clock):
    calls = fake_worker(monkeypatch, ProgrammingError('relation "django_tasks_db" is missing'))

    with pytest.raises(ProgrammingError):
        call_command("run_worker", verbosity=0)

    assert len(calls) == 1
    assert clock.waits == []


# --- Real worker processes against the test database (PostgreSQL) --------------------------


def wait_for(condition: Callable[[], object], *, what: str) -> None:
    """Poll `condition` until it holds; fail after DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {DEADLINE_SECONDS} s for {what}")
        time.sleep(0.05)


@contextmanager
def worker_process(log: Path, *arguments: str) -> Iterator[subprocess.Popen]:
    """`manage.py <arguments>` on the test database, output in `log`; stopped at the end."""
    database = connection.settings_dict
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DATABASE_", "PG", "LOG_", "DEBUG"))
    }
    environment = inherited | {
        "DJANGO_SETTINGS_MODULE": "ahoum.test_settings",
        "DATABASE_URL": (
            f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PGAPPNAME": APPLICATION_NAME,  # libpq's default application_name
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *arguments],
            cwd=BASE_DIR,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def log_messages(log: Path) -> list[str]:
    """The messages of the JSON log lines, and any other line (a traceback) as it is."""
    messages = []
    for line in log.read_text().splitlines():
        try:
            messages.append(json.loads(line)["message"])
        except (ValueError, KeyError, TypeError):
            messages.append(line)
    return messages


def losses(log: Path) -> list[str]:
    return [message for message in log_messages(log) if message.startswith(LOST)]


def worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def terminate_worker_connections() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = %s",
            [APPLICATION_NAME],
        )


@contextmanager
def database_refusing_connections() -> Iterator[None]:
    """No new connection to the test database while inside; open ones (the test's) stay.

    PostgreSQL refuses this from a connection to the database itself: it is said from the
    server's maintenance database.
    """
    database = connection.settings_dict
    name = connection.ops.quote_name(database["NAME"])
    with psycopg.connect(
        dbname="postgres",
        user=database["USER"],
        password=database["PASSWORD"] or None,
        host=database["HOST"] or "127.0.0.1",
        port=database["PORT"] or 5432,
        autocommit=True,
    ) as maintenance:
        maintenance.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        try:
            yield
        finally:
            maintenance.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")


def book_free_event() -> Booking:
    event = EventFactory(price=Decimal("0"))
    booking = services.book_event(user=UserFactory(), event_id=event.pk)
    assert booking.status == BookingStatus.CONFIRMED
    return booking


def emails_sent(booking: Booking) -> bool:
    statuses = set(BookingEmail.objects.filter(booking=booking).values_list("status", flat=True))
    return statuses == {AttemptStatus.SUCCEEDED}


@pytest.mark.postgres(reason="cuts a worker process off a real database server")
@pytest.mark.django_db(transaction=True)
def test_worker_that_loses_the_database_reconnects_and_goes_on_processing_in_the_same_process(
    tmp_path,
):
    log = tmp_path / "run_worker.log"
    with worker_process(log, "run_worker", "--interval", "0.2") as worker:
        first = book_free_event()
        wait_for(lambda: emails_sent(first), what="the first booking's emails to be sent")

        def worker_noticed_twice() -> bool:
            terminate_worker_connections()  # one that opened just before the refusal too
            return len(losses(log)) >= 2

        with database_refusing_connections():
            wait_for(worker_noticed_twice, what="the worker to lose the database twice")

        second = book_free_event()
        wait_for(lambda: emails_sent(second), what="the second booking's emails to be sent")
        assert worker.poll() is None, log.read_text()
    assert worker.returncode == 0, log.read_text()  # SIGTERM still stops it cleanly

    messages = log_messages(log)
    lost = losses(log)
    assert "reconnecting in 0.5 s" in lost[0]
    assert "reconnecting in 1.0 s" in lost[1]
    last_loss = max(index for index, message in enumerate(messages) if message.startswith(LOST))
    assert any(message.startswith("Starting worker") for message in messages[last_loss:])


@pytest.mark.postgres(reason="cuts a worker process off a real database server")
@pytest.mark.django_db(transaction=True)
def test_plain_db_worker_exits_when_it_loses_the_database(tmp_path):
    """What run_worker is for: the library's worker re-raises the error and its process ends."""
    log = tmp_path / "db_worker.log"
    arguments = ("db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload")
    with worker_process(log, *arguments) as worker:
        wait_for(lambda: worker_connections() > 0, what="db_worker to connect")

        def worker_exited() -> bool:
            terminate_worker_connections()
            return worker.poll() is not None

        with database_refusing_connections():
            wait_for(worker_exited, what="db_worker to exit")
    assert worker.returncode == 1
    assert "django.db.utils.OperationalError" in log.read_text()
