"""Big operations: an event cancel with 2,000 paid bookings, and a CRM backlog of 20,000.

`make bench-ops` (or `.venv/bin/python bench/big_operations.py`) measures, on a fresh
PostgreSQL database per scenario (`ahoum_bench_ops`, copied from a migrated template the way
bench/run.py builds its own), with real processes on 127.0.0.1: 2 task workers
(`manage.py run_worker`), the fake Stripe (`python -m fakes.stripe_api`), a CRM receiver that
answers 200 at once (this file, `--receiver`), and gunicorn with the production settings for
the cancel request.

- **cancel**: one event with `--bookings` paid bookings (each with its Payment, paid through
  the fake Stripe's Checkout so it can refund it). Times `POST /facilitator/cancel/{id}`,
  then polls until every refund is `succeeded`.
- **crm**: `--deliveries` pending CRM deliveries due now, as an hour-long outage leaves
  them (a few failed attempts each, the next one's task due), then 2 workers drain them.

While each runs, pg_stat_activity is sampled for the longest open transaction. Results:
bench/results/big_operations.md and .json; process logs in bench/.work/ops/. See
bench/README.md, "Big operations".
"""

import argparse
import contextlib
import importlib.util
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer

import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work" / "ops"
RESULTS = BENCH / "results"
PYTHON = sys.executable
sys.path.insert(0, str(REPO))

from fakes.stripe_api import TEST_SECRET_KEY  # noqa: E402


def _bench_runner():
    """bench/run.py, for the way it builds a migrated database (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Targets from issue 20 ("Big operations stay bounded").
CANCEL_MAX_REQUEST_SECONDS = 1.0
CANCEL_MAX_LAST_REFUND_SECONDS = 120.0
CRM_MIN_DELIVERIES_PER_SECOND = 100.0


def main() -> None:
    args = parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench-ops: stopped"))
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    scenarios = ["cancel", "crm"] if args.scenario == "all" else [args.scenario]
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "load_average_at_start": load_average()},
        "config": {
            "workers": args.workers,
            "worker_interval_seconds": args.interval,
            "bookings": args.bookings,
            "deliveries": args.deliveries,
        },
        "scenarios": {},
    }
    stack = Stack(args)
    for scenario in scenarios:
        say(f"--- scenario {scenario}")
        report["scenarios"][scenario] = run_scenario(scenario, args, stack)
    report["machine"]["load_average_at_end"] = load_average()
    report["targets"] = evaluate_targets(report["scenarios"])
    (RESULTS / "big_operations.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (RESULTS / "big_operations.md").write_text(markdown)
    print(markdown)
    say(f"wrote {RESULTS / 'big_operations.md'} and big_operations.json")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["all", "cancel", "crm"], default="all")
    parser.add_argument("--bookings", type=int, default=2000, help="paid bookings to cancel")
    parser.add_argument("--deliveries", type=int, default=20_000, help="CRM deliveries waiting")
    parser.add_argument("--workers", type=int, default=2, help="task worker processes")
    parser.add_argument(
        "--interval", type=float, default=1, help="run_worker --interval (the Procfile's: 1)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600, help="give up waiting for a scenario after"
    )
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port (0: a free one)")
    parser.add_argument("--db", default="ahoum_bench_ops")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument(
        "--fresh-migrate", action="store_true", help="migrate even if a template exists"
    )
    parser.add_argument("--receiver", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def say(message: str) -> None:
    print(f"[bench-ops {datetime.now():%H:%M:%S}] {message}", flush=True)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The CRM receiver -------------------------------------------------------------------------


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # no reverse DNS lookup of the host name
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _ReceiverHandler(BaseHTTPRequestHandler):
    """Answers every POST with 200 at once; GET /_count says how many it took (and distinct
    webhook-ids, so a repeated delivery shows)."""

    protocol_version = "HTTP/1.1"  # keep-alive: requests' pool reuses the connection
    lock = threading.Lock()
    posts = 0
    webhook_ids: set[str] = set()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.lock:
            type(self).posts += 1
            self.webhook_ids.add(self.headers.get("webhook-id", ""))
        self._answer(b'{"ok":true}')

    def do_GET(self) -> None:
        with self.lock:
            body = json.dumps({"posts": self.posts, "distinct": len(self.webhook_ids)})
        self._answer(body.encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


def serve_receiver(port: int) -> None:
    server = _Receiver(("127.0.0.1", port), _ReceiverHandler)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def receiver_counts(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_count", timeout=5) as answer:  # noqa: S310
        return json.loads(answer.read())


# --- Processes --------------------------------------------------------------------------------


class Processes:
    """The processes of one scenario; all stopped (by their own pid) when it ends."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (WORK / f"{name}.log").open("w")
        process = subprocess.Popen(
            argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.running.append((name, process))
        return process

    def pids(self) -> list[tuple[str, int]]:
        """(name, pid) of every process started, with gunicorn's workers under its name."""
        found = [(name, process.pid) for name, process in self.running]
        masters = {process.pid: name for name, process in self.running}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int(stat.read_text().rpartition(")")[2].split()[1])
                if parent in masters:
                    found.append((masters[parent], int(stat.parent.name)))
        return found

    def stop_all(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(self.running):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in 20 s: killing it")
                process.kill()
                process.wait()
        self.running.clear()


def wait_for_url(url: str, process: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited ({process.returncode}); see {WORK / (name + '.log')}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310
            if answer.status < 500:
                return
        time.sleep(0.2)
    sys.exit(f"{name} did not answer {url} in {timeout:.0f} s")


def wait_for_log(name: str, text: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited ({process.returncode}); see {WORK / (name + '.log')}")
        if text in (WORK / f"{name}.log").read_text(errors="replace"):
            return
        time.sleep(0.1)
    sys.exit(f"{name} did not log {text!r} in {timeout:.0f} s")


class Stack:
    """Where everything runs, and the environment every process shares: production settings
    (DEBUG off) on loopback, with Stripe and the CRM pointed at the fakes. The same for every
    scenario (this process loads Django's settings once)."""

    def __init__(self, args: argparse.Namespace):
        server = f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}"
        self.admin_dsn = f"{server}/postgres"
        self.database_url = f"{server}/{args.db}"
        self.stripe_port, self.crm_port = free_port(), free_port()
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.crm_url = f"http://127.0.0.1:{self.crm_port}"
        self.env = dict(os.environ)
        self.env.update(
            READ_DOT_ENV="False",
            DEBUG="False",
            DJANGO_SETTINGS_MODULE="ahoum.settings",
            SECRET_KEY=secrets.token_urlsafe(50),
            JWT_SECRET_KEY=secrets.token_urlsafe(48),
            SECURE_SSL_REDIRECT="False",
            ALLOWED_HOSTS="127.0.0.1",
            DATABASE_URL=self.database_url,
            STRIPE_SECRET_KEY=TEST_SECRET_KEY,
            STRIPE_API_BASE=self.stripe_url,
            CRM_WEBHOOK_URL=f"{self.crm_url}/crm/webhook",
            CRM_WEBHOOK_SECRET=secrets.token_urlsafe(32),
            # Emails are rendered and "sent" by the worker as in production, to no mail server.
            EMAIL_URL="dummymail://",
            REDIS_URL="",  # the catalogue cache is not measured here; no shared Redis touched
            ACCESS_TOKEN_MINUTES="60",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )


def setup_django(env: dict[str, str]) -> None:
    """This process seeds and counts through the ORM, with the workers' settings."""
    os.environ.update(env)
    import django

    django.setup()


# --- Longest transaction ------------------------------------------------------------------


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int | None:
    """User + system CPU ticks of one process so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def machine_busy_ticks() -> int:
    """CPU ticks every core spent busy (not idle or waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(values) - values[3] - values[4]


class Sampler:
    """Samples pg_stat_activity every 50 ms for the oldest open transaction of the database,
    and the CPU time of the scenario's processes and their PostgreSQL backends.

    The transaction is a lower bound (one shorter than the period can be missed), but a long
    one cannot hide: it is seen for its whole length. Also counts samples in which some
    backend waited for a lock, and the longest such wait seen. CPU: the latest ticks of every
    process seen, so a backend that closes midway still counts up to its last sample; the
    machine's busy time beside it shows whether other work shared the cores.
    """

    QUERY = """
        SELECT extract(epoch FROM now() - xact_start), state, left(query, 160),
               max(extract(epoch FROM now() - query_start))
                   FILTER (WHERE wait_event_type = 'Lock') OVER ()
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND xact_start IS NOT NULL AND backend_type = 'client backend'
        ORDER BY xact_start LIMIT 1
    """
    BACKENDS = """
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'
    """

    def __init__(self, database_url: str, processes: "Processes"):
        self.connection = psycopg.connect(database_url, autocommit=True)
        self.processes = processes
        self.longest = (0.0, "", "")
        self.samples = 0
        self.lock_wait_samples = 0
        self.longest_lock_wait = 0.0
        self.first: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> "Sampler":
        self.started = time.monotonic()
        self.machine_before = machine_busy_ticks()
        self.sample_cpu()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.sample_cpu()
        self.seconds = time.monotonic() - self.started
        self.machine_ticks = machine_busy_ticks() - self.machine_before
        self.connection.close()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            row = self.connection.execute(self.QUERY).fetchone()
            self.samples += 1
            if self.samples % 10 == 0:
                self.sample_cpu()
            if row is None:
                continue
            age, state, query, waiting = float(row[0] or 0), row[1], row[2], row[3]
            if waiting is not None:
                self.lock_wait_samples += 1
                self.longest_lock_wait = max(self.longest_lock_wait, float(waiting))
            if age > self.longest[0]:
                self.longest = (age, state, query)

    def sample_cpu(self) -> None:
        groups = [(name.rstrip("0123456789"), pid) for name, pid in self.processes.pids()]
        groups += [("postgres", row[0]) for row in self.connection.execute(self.BACKENDS)]
        for key in groups:
            ticks = process_ticks(key[1])
            if ticks is not None:
                self.first.setdefault(key, ticks)
                self.last[key] = ticks

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per group of processes during the measurement, and the machine's."""
        used: dict[str, float] = {}
        for key, ticks in self.last.items():
            used[key[0]] = used.get(key[0], 0) + (ticks - self.first[key]) / TICKS_PER_SECOND
        used = {group: round(seconds, 1) for group, seconds in sorted(used.items())}
        used["machine"] = round(self.machine_ticks / TICKS_PER_SECOND, 1)
        used["machine_capacity"] = round(self.seconds * (os.cpu_count() or 1), 1)
        return used

    def result(self) -> dict:
        age, state, query = self.longest
        return {
            "longest_transaction_seconds": round(age, 3),
            "longest_transaction_state": state,
            "longest_transaction_query": " ".join(query.split()),
            "samples": self.samples,
            "samples_with_a_lock_wait": self.lock_wait_samples,
            "longest_lock_wait_seconds": round(self.longest_lock_wait, 3),
            "cpu_seconds": self.cpu_seconds(),
        }


def per_item(cpu_seconds: dict[str, float], count: int) -> dict[str, float]:
    return {
        group: round(seconds * 1000 / count, 2)
        for group, seconds in cpu_seconds.items()
        if group != "machine_capacity"
    }


def cpu_bound_rate(cpu_seconds: dict[str, float], count: int) -> float | None:
    ours = sum(
        seconds
        for group, seconds in cpu_seconds.items()
        if group not in ("machine", "machine_capacity")
    )
    return round(count * (os.cpu_count() or 1) / ours, 1) if ours else None


def task_durations(database_url: str) -> list[dict]:
    """Per task kind: how many ran and how long each took (django-tasks-db's own timestamps)."""
    query = """
        SELECT task_path, status, count(*),
               round(avg(extract(epoch FROM finished_at - started_at)) * 1000, 1),
               round(max(extract(epoch FROM finished_at - started_at)) * 1000, 1)
        FROM django_tasks_database_dbtaskresult
        GROUP BY task_path, status ORDER BY count(*) DESC
    """
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(query).fetchall()
    return [
        {
            "task": path.rsplit(".", 1)[-1],
            "status": status,
            "count": count,
            "mean_ms": float(mean) if mean is not None else None,
            "max_ms": float(longest) if longest is not None else None,
        }
        for path, status, count, mean, longest in rows
    ]


# --- Scenarios --------------------------------------------------------------------------------


def run_scenario(scenario: str, args: argparse.Namespace, stack: Stack) -> dict:
    """A fresh database, the fakes, then the scenario; every process stopped after."""
    say(f"database {args.db}")
    _bench_runner().build_database(stack.admin_dsn, args.db, stack.env, fresh=args.fresh_migrate)
    args.fresh_migrate = False  # the next scenario copies the template just made
    setup_django(stack.env)
    processes = Processes(stack.env)
    try:
        stripe = processes.start(
            "stripe", [PYTHON, "-m", "fakes.stripe_api", "--port", str(stack.stripe_port)]
        )
        wait_for_url(f"{stack.stripe_url}/_fake/requests", stripe, "stripe")
        receiver = processes.start(
            "receiver", [PYTHON, __file__, "--receiver", str(stack.crm_port)]
        )
        wait_for_url(f"{stack.crm_url}/_count", receiver, "receiver")
        if scenario == "cancel":
            return measure_cancel(args, processes, stack)
        return measure_crm(args, processes, stack)
    finally:
        processes.stop_all()
        from django.db import connections

        connections.close_all()


def start_workers(args: argparse.Namespace, processes: Processes) -> None:
    workers = [
        processes.start(
            f"worker{n}",
            [PYTHON, "manage.py", "run_worker", "--interval", str(args.interval)],
        )
        for n in range(1, args.workers + 1)
    ]
    for n, worker in enumerate(workers, start=1):
        wait_for_log(f"worker{n}", "Starting worker", worker)


def tasks_due() -> int:
    """Tasks waiting for a worker now (due, not taken)."""
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.ready().count()


def vacuum_analyze(database_url: str) -> None:
    # A live database has planner statistics (see bench/seed.py).
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


# --- Cancel -----------------------------------------------------------------------------------


def seed_cancel(count: int, stripe_url: str) -> dict:
    """One facilitator's event with `count` confirmed, paid bookings, each paid through the
    fake Stripe's Checkout (so it holds the PaymentIntent and Charge a refund needs)."""
    import requests
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Role, User
    from accounts.serializers import issue_tokens
    from bookings.models import (
        Attendee,
        Booking,
        BookingAudit,
        BookingStatus,
        Payment,
        PaymentStatus,
    )
    from events.models import Event

    price = Decimal("50.00")
    sessions = []
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TEST_SECRET_KEY}"
        for n in range(count):
            created = http.post(
                f"{stripe_url}/v1/checkout/sessions",
                data={
                    "mode": "payment",
                    "success_url": "http://127.0.0.1/paid",
                    "line_items[0][price_data][currency]": "eur",
                    "line_items[0][price_data][unit_amount]": "5000",
                    "line_items[0][price_data][product_data][name]": "Big cancel retreat",
                    "line_items[0][quantity]": "1",
                    "customer_email": f"bench-ops-user-{n}@ahoum.example",
                },
                timeout=10,
            )
            created.raise_for_status()
            session_id = created.json()["id"]
            paid = http.post(f"{stripe_url}/_fake/sessions/{session_id}/pay", json={}, timeout=10)
            paid.raise_for_status()
            sessions.append((session_id, paid.json()["payment_intent"]))

    now = timezone.now()
    with transaction.atomic():
        facilitator = User.objects.create(
            email="bench-ops-facilitator@ahoum.example",
            name="Bench Ops Facilitator",
            role=Role.FACILITATOR,
            password=make_password(None),
        )
        users = User.objects.bulk_create(
            [
                User(
                    email=f"bench-ops-user-{n}@ahoum.example",
                    name=f"Bench Ops User {n}",
                    role=Role.USER,
                    password=make_password(None),
                )
                for n in range(count)
            ],
            batch_size=1000,
        )
        starts_at = (now + timedelta(days=30)).replace(second=0, microsecond=0)
        event = Event.objects.create(
            title="Big cancel retreat",
            description="A retreat everyone booked, cancelled by its facilitator.",
            type="Retreat",
            rating=Decimal("4.8"),
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=2),
            location="Bali",
            capacity=count + 10,
            price=price,
            currency="EUR",
            facilitator=facilitator,
        )
        paid_at = now - timedelta(days=1)
        bookings = Booking.objects.bulk_create(
            [
                Booking(
                    user=user,
                    event=event,
                    facilitator=facilitator,
                    status=BookingStatus.CONFIRMED,
                    payment_status=PaymentStatus.PAID,
                    amount=price,
                    currency="EUR",
                    version=2,
                    checkout_session_id=session_id,
                    payment_intent_id=intent_id,
                    created_at=paid_at,
                    confirmed_at=paid_at,
                    paid_at=paid_at,
                )
                for user, (session_id, intent_id) in zip(users, sessions, strict=True)
            ],
            batch_size=1000,
        )
        Attendee.objects.bulk_create(
            [
                Attendee(
                    booking=booking,
                    position=1,
                    name=booking.user.name,
                    email=booking.user.email,
                    is_booker=True,
                    created_at=paid_at,
                )
                for booking in bookings
            ],
            batch_size=1000,
        )
        Payment.objects.bulk_create(
            [
                Payment(
                    booking=booking,
                    checkout_session_id=booking.checkout_session_id,
                    payment_intent_id=booking.payment_intent_id,
                    amount=price,
                    currency="EUR",
                    paid_at=paid_at,
                    settles_booking=True,
                )
                for booking in bookings
            ],
            batch_size=1000,
        )
        BookingAudit.objects.bulk_create(
            [
                BookingAudit(
                    booking=booking,
                    version=version,
                    change=change,
                    from_status=from_status,
                    to_status=to_status,
                    from_payment_status=from_payment,
                    to_payment_status=to_payment,
                    actor=booking.user,
                    reason=reason,
                    created_at=paid_at,
                )
                for booking in bookings
                for version, change, from_status, to_status, from_payment, to_payment, reason in (
                    (1, "booking.created", "", "pending", "", "unpaid", "booked"),
                    (2, "booking.paid", "pending", "confirmed", "unpaid", "paid", "paid"),
                )
            ],
            batch_size=2000,
        )
        Event.objects.filter(pk=event.pk).recount_claimed_seats()
        token = issue_tokens(facilitator)["access_token"]
    return {"event_id": event.pk, "token": token, "bookings": count}


def refund_progress(event_id: int) -> dict:
    from django.db.models import Count, Max, Min, Q

    from bookings.models import Booking, Refund

    refunds = Refund.objects.filter(booking__event_id=event_id).aggregate(
        owed=Count("pk"),
        succeeded=Count("pk", filter=Q(status="succeeded")),
        gave_up=Count("pk", filter=Q(status="gave_up")),
        first_succeeded_at=Min("succeeded_at"),
        last_succeeded_at=Max("succeeded_at"),
    )
    bookings = Booking.objects.filter(event_id=event_id).aggregate(
        active=Count("pk", filter=Q(status__in=["pending", "confirmed"])),
        last_cancelled_at=Max("cancelled_at"),
        refunded=Count("pk", filter=Q(payment_status="refunded")),
    )
    return refunds | bookings


def measure_cancel(args: argparse.Namespace, processes: Processes, stack: Stack) -> dict:
    import requests

    database_url, stripe_url = stack.database_url, stack.stripe_url
    say(f"seeding {args.bookings} paid bookings (each paid in the fake Stripe)")
    started = time.monotonic()
    seed = seed_cancel(args.bookings, stripe_url)
    vacuum_analyze(database_url)
    seed_seconds = time.monotonic() - started
    say(f"seeded in {seed_seconds:.1f} s; starting gunicorn and {args.workers} workers")

    port = args.port or free_port()
    web = processes.start(
        "gunicorn",
        [str(Path(PYTHON).with_name("gunicorn")), "ahoum.wsgi", "--bind", f"127.0.0.1:{port}"],
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_for_url(f"{base_url}/healthz", web, "gunicorn")
    start_workers(args, processes)
    headers = {"Authorization": f"Bearer {seed['token']}"}
    with requests.Session() as http:
        # Warm every gunicorn worker as a running server is (imports, first queries).
        for _ in range(20):
            http.get(f"{base_url}/facilitator/events", headers=headers, timeout=30)
        with Sampler(database_url, processes) as sampler:
            request_started = datetime.now(UTC)
            clock = time.monotonic()
            answer = http.post(
                f"{base_url}/facilitator/cancel/{seed['event_id']}",
                json={"reason": "The venue flooded."},
                headers=headers,
                timeout=60,
            )
            request_seconds = time.monotonic() - clock
            say(f"cancel answered {answer.status_code} in {request_seconds * 1000:.0f} ms")
            answer.raise_for_status()
            deadline = clock + args.max_seconds
            while time.monotonic() < deadline:
                progress = refund_progress(seed["event_id"])
                if progress["succeeded"] + progress["gave_up"] >= args.bookings:
                    break
                say(
                    f"  {time.monotonic() - clock:5.1f} s: {args.bookings - progress['active']} "
                    f"cancelled, {progress['succeeded']} of {progress['owed']} refunds made, "
                    f"{tasks_due()} tasks due"
                )
                time.sleep(2)
            progress = refund_progress(seed["event_id"])
    last = progress["last_succeeded_at"]
    settled = progress["last_cancelled_at"]
    last_refund_seconds = (last - request_started).total_seconds() if last else None
    result = {
        "bookings": args.bookings,
        "seed_seconds": round(seed_seconds, 1),
        "request_status": answer.status_code,
        "request_seconds": round(request_seconds, 3),
        "request_answer": answer.json(),
        "all_cancelled_seconds": round((settled - request_started).total_seconds(), 1)
        if settled and not progress["active"]
        else None,
        "last_refund_seconds": round(last_refund_seconds, 1) if last_refund_seconds else None,
        "refunds_succeeded": progress["succeeded"],
        "refunds_gave_up": progress["gave_up"],
        "bookings_refunded": progress["refunded"],
        "refunds_per_second": round(progress["succeeded"] / last_refund_seconds, 1)
        if last_refund_seconds
        else None,
        "stripe_refund_requests": stripe_refund_requests(stripe_url),
        **sampler.result(),
        "cpu_ms_per_booking": per_item(sampler.cpu_seconds(), args.bookings),
        "tasks": task_durations(database_url),
    }
    say(
        f"last refund {result['last_refund_seconds']} s after the request "
        f"({result['refunds_per_second']}/s); longest transaction "
        f"{result['longest_transaction_seconds']} s"
    )
    return result


def stripe_refund_requests(stripe_url: str) -> dict:
    """POST /v1/refunds the fake received, and how many distinct idempotency keys."""
    with urllib.request.urlopen(f"{stripe_url}/_fake/requests", timeout=30) as answer:  # noqa: S310
        recorded = json.loads(answer.read())["data"]
    refunds = [r for r in recorded if r["method"] == "POST" and r["path"] == "/v1/refunds"]
    return {"requests": len(refunds), "distinct_keys": len({r["idempotency_key"] for r in refunds})}


# --- CRM drain --------------------------------------------------------------------------------


def seed_deliveries(count: int, crm_url: str) -> None:
    """`count` notifications left behind by an hour-long outage, due now.

    As `attempts.record_failure` leaves each one after its failed attempts: pending, `attempts`
    and `failures` counted (1 to 8, the CRM backoff's attempts in an hour), the connection
    error recorded, the next attempt due (within the last minute) and its task enqueued for
    that time.
    """
    from django.db import transaction
    from django.utils import timezone

    from crm import signing, tasks
    from crm.models import Delivery, DeliveryKind

    rng = random.Random(20)
    now = timezone.now()
    url = f"{crm_url}/crm/webhook"
    error = (
        "network error: ConnectionError: HTTPConnectionPool(host='crm.example', port=443): Max "
        "retries exceeded (Caused by NewConnectionError: Failed to establish a new connection)"
    )
    deliveries = []
    for n in range(count):
        created_at = now - timedelta(seconds=rng.uniform(60, 3600))
        tries = rng.randint(1, 8)
        booking_id = 100_000 + n
        deliveries.append(
            Delivery(
                kind=DeliveryKind.NOTIFICATION,
                webhook_id=signing.new_webhook_id(),
                target_url=url,
                event_type="booking.paid",
                booking_id=booking_id,
                sequence=2,
                payload={
                    "type": "booking.paid",
                    "booking_id": booking_id,
                    "user": {"name": f"Bench User {n}", "email": f"bench-{n}@ahoum.example"},
                    "user_id": 1000 + n,
                    "event": 1 + n % 500,
                    "event_title": f"Yoga session {n % 500}",
                    "starts_at": (now + timedelta(days=30)).isoformat(),
                    "facilitator_id": 1 + n % 20,
                    "status": "confirmed",
                    "payment_status": "paid",
                    "amount": "50.00",
                    "currency": "EUR",
                    "occurred_at": created_at.isoformat(),
                    "sequence": 2,
                    "reason": "paid",
                },
                status="pending",
                attempts=tries,
                failures=tries,
                last_error=error,
                last_attempt_at=now - timedelta(seconds=rng.uniform(60, 120)),
                next_attempt_at=now - timedelta(seconds=rng.uniform(0, 60)),
                retry_until=created_at + timedelta(hours=24),
                created_at=created_at,
            )
        )
    with transaction.atomic():
        Delivery.objects.bulk_create(deliveries, batch_size=2000)
        for delivery in deliveries:
            tasks.send_delivery.using(run_after=delivery.next_attempt_at).enqueue(
                delivery.pk, delivery.attempts
            )


def delivery_progress() -> dict:
    from django.db.models import Count, Max, Min, Q

    from crm.models import Delivery

    return Delivery.objects.aggregate(
        total=Count("pk"),
        succeeded=Count("pk", filter=Q(status="succeeded")),
        gave_up=Count("pk", filter=Q(status="gave_up")),
        first_succeeded_at=Min("succeeded_at"),
        last_succeeded_at=Max("succeeded_at"),
    )


def measure_crm(args: argparse.Namespace, processes: Processes, stack: Stack) -> dict:
    database_url, crm_url = stack.database_url, stack.crm_url
    say(f"seeding {args.deliveries} waiting CRM deliveries, each with its task")
    started = time.monotonic()
    seed_deliveries(args.deliveries, crm_url)
    vacuum_analyze(database_url)
    seed_seconds = time.monotonic() - started
    say(f"seeded in {seed_seconds:.1f} s; starting {args.workers} workers")
    with Sampler(database_url, processes) as sampler:
        workers_started = datetime.now(UTC)
        clock = time.monotonic()
        start_workers(args, processes)
        deadline = clock + args.max_seconds
        while time.monotonic() < deadline:
            progress = delivery_progress()
            if progress["succeeded"] + progress["gave_up"] >= args.deliveries:
                break
            say(
                f"  {time.monotonic() - clock:5.1f} s: {progress['succeeded']} delivered, "
                f"{tasks_due()} tasks due"
            )
            time.sleep(2)
        progress = delivery_progress()
    first, last = progress["first_succeeded_at"], progress["last_succeeded_at"]
    drain_seconds = (last - first).total_seconds() if first and last and last > first else None
    received = receiver_counts(crm_url)
    result = {
        "deliveries": args.deliveries,
        "seed_seconds": round(seed_seconds, 1),
        "delivered": progress["succeeded"],
        "gave_up": progress["gave_up"],
        # From the first delivery to the last: the workers' start-up is not the drain.
        "drain_seconds": round(drain_seconds, 1) if drain_seconds else None,
        "deliveries_per_second": round((progress["succeeded"] - 1) / drain_seconds, 1)
        if drain_seconds
        else None,
        "since_workers_started_seconds": round((last - workers_started).total_seconds(), 1)
        if last
        else None,
        "receiver_posts": received["posts"],
        "receiver_distinct_webhook_ids": received["distinct"],
        **sampler.result(),
        "cpu_ms_per_delivery": per_item(sampler.cpu_seconds(), args.deliveries),
        # What the cores would allow if nothing else ran: an upper bound, steadier than the
        # rate when other work shares the machine.
        "deliveries_per_second_cpu_bound": cpu_bound_rate(sampler.cpu_seconds(), args.deliveries),
        "tasks": task_durations(database_url),
    }
    say(
        f"{result['delivered']} delivered in {result['drain_seconds']} s "
        f"({result['deliveries_per_second']}/s); longest transaction "
        f"{result['longest_transaction_seconds']} s"
    )
    return result


# --- Report -----------------------------------------------------------------------------------


def evaluate_targets(scenarios: dict) -> list[dict]:
    targets = []
    if cancel := scenarios.get("cancel"):
        last = cancel["last_refund_seconds"]
        targets += [
            {
                "target": f"cancel of {cancel['bookings']} paid bookings: the request",
                "wanted": f"< {CANCEL_MAX_REQUEST_SECONDS:g} s",
                "measured": f"{cancel['request_seconds']} s",
                "met": cancel["request_seconds"] < CANCEL_MAX_REQUEST_SECONDS,
            },
            {
                "target": "every refund made",
                "wanted": f"< {CANCEL_MAX_LAST_REFUND_SECONDS:g} s",
                "measured": f"{last} s, {cancel['refunds_succeeded']} succeeded, "
                f"{cancel['refunds_gave_up']} gave up",
                "met": last is not None
                and last < CANCEL_MAX_LAST_REFUND_SECONDS
                and cancel["refunds_succeeded"] == cancel["bookings"],
            },
        ]
    if crm := scenarios.get("crm"):
        rate = crm["deliveries_per_second"]
        targets.append(
            {
                "target": f"{crm['deliveries']} waiting CRM deliveries drained",
                "wanted": f">= {CRM_MIN_DELIVERIES_PER_SECOND:g}/s",
                "measured": f"{rate}/s, {crm['delivered']} delivered, {crm['gave_up']} gave up",
                "met": rate is not None
                and rate >= CRM_MIN_DELIVERIES_PER_SECOND
                and crm["delivered"] == crm["deliveries"],
            }
        )
    return targets


def render_markdown(report: dict) -> str:
    config, machine = report["config"], report["machine"]
    lines = [
        f"# Big operations ({report['generated_at']})",
        "",
        f"{machine['cpu_count']} cores; {config['workers']} task workers "
        f"(`run_worker --interval {config['worker_interval_seconds']:g}`), PostgreSQL, the fake "
        "Stripe and the CRM receiver on the same machine. Load average at the start "
        f"{machine['load_average_at_start']}, at the end {machine['load_average_at_end']}.",
        "",
        "| Target | Wanted | Measured | Met |",
        "|---|---|---|---|",
    ]
    for target in report["targets"]:
        lines.append(
            f"| {target['target']} | {target['wanted']} | {target['measured']} "
            f"| {'yes' if target['met'] else 'no'} |"
        )
    for name, result in report["scenarios"].items():
        lines += ["", f"## {name}", ""]
        for key, value in result.items():
            if key != "tasks":
                lines.append(f"- {key}: {json.dumps(value)}")
        lines += ["", "| Task | Status | Count | Mean ms | Max ms |", "|---|---|---:|---:|---:|"]
        for task in result["tasks"]:
            lines.append(
                f"| {task['task']} | {task['status']} | {task['count']} | {task['mean_ms']} "
                f"| {task['max_ms']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
