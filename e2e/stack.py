"""The whole system on 127.0.0.1, as real processes: what the end-to-end tests drive.

    fake Stripe API  (python -m fakes.stripe_api)
    web              (gunicorn, 2 workers, production settings: DEBUG off, JSON logs)
    CRM receiver     (a second gunicorn serving the same project; its /crm/webhook is the
                      CRM the web app notifies, so it can be stopped and restarted alone)
    task worker      (python manage.py run_worker)
    scheduler        (python manage.py sweep --every 1: the Procfile's scheduler, on a short
                      period, so periodic work such as expiring lapsed holds happens in seconds)
    PostgreSQL       (a fresh database, migrated with the real migrations)

Each process writes its log to `artifacts/e2e/<name>.log` (kept by CI on failure).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

BASE_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = BASE_DIR / "artifacts" / "e2e"
PG_SERVER = os.environ.get("E2E_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
# One database per run, so two runs on one machine (a developer's and CI's) never collide.
DATABASE = os.environ.get("E2E_DATABASE") or f"ahoum_e2e_{os.getpid()}"
STRIPE_TEST_KEY = "sk_test_AhoumFakeStripe0000000000"
STRIPE_WEBHOOK_SECRET = "whsec_ahoum_e2e_secret"
STRIPE_WEBHOOK_UUID = "6f1c2d3e-0000-4000-8000-00000000e2e0"
CRM_SECRET = "crm-e2e-bearer-secret-0123456789"
STAFF_EMAIL, STAFF_PASSWORD = "staff@ahoum.example", "staff-e2e-password-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2):
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, psycopg.Error):
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return ARTIFACTS / f"{self.name}.log"

    def start(self, timeout: float = 60) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        if self.ready_url:
            wait_until(self._ready, timeout=timeout, what=f"{self.name} at {self.ready_url}")
        return self

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited; see {self.log_path}")
        return requests.get(self.ready_url, timeout=2).status_code < 500

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


class Stack:
    def __init__(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.stripe_port, self.web_port, self.crm_port = free_port(), free_port(), free_port()
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.crm_url = f"http://127.0.0.1:{self.crm_port}"
        self.database_url = f"{PG_SERVER}/{DATABASE}"
        self.webhook_url = f"{self.base_url}/stripe/webhook/{STRIPE_WEBHOOK_UUID}"
        self.env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "ahoum.settings",
            "READ_DOT_ENV": "false",
            "DEBUG": "False",
            "SECRET_KEY": "e2e-" + uuid.uuid4().hex * 2,
            "JWT_SECRET_KEY": "e2e-jwt-" + uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "False",  # plain HTTP on loopback; TLS ends at a proxy
            "DATABASE_URL": self.database_url,
            # Shared by the two web workers, as in production: the catalogue cache is on.
            "REDIS_URL": os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "CACHE_KEY_PREFIX": f"e2e-{DATABASE}",
            "LOG_FORMAT": "json",
            "EMAIL_URL": "consolemail://",  # the emails land in the worker's log
            "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
            "STRIPE_API_BASE": self.stripe_url,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "STRIPE_WEBHOOK_UUID": STRIPE_WEBHOOK_UUID,
            "CRM_WEBHOOK_URL": f"{self.crm_url}/crm/webhook",
            "CRM_WEBHOOK_SECRET": CRM_SECRET,
            "CRM_RETRY_BASE_SECONDS": "1",
            "CRM_RETRY_MAX_DELAY_SECONDS": "2",
            "AUTH_THROTTLE_RATE": "100000/minute",  # fuzzing registers and logs in a lot
            "LOGIN_FAILURE_LIMIT": "100000",  # the fuzzer fails logins on purpose, often
            "DJANGO_SUPERUSER_EMAIL": STAFF_EMAIL,
            "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
            "DJANGO_SUPERUSER_NAME": "E2E Staff",
        }
        python = sys.executable
        gunicorn = str(Path(python).with_name("gunicorn"))
        self.stripe = Process(
            "stripe",
            [python, "-m", "fakes.stripe_api", "--port", str(self.stripe_port)],
            self.env,
            ready_url=f"{self.stripe_url}/_fake/requests",
        )
        self.web = Process(
            "web",
            [gunicorn, "ahoum.wsgi", "--bind", f"127.0.0.1:{self.web_port}", "--workers", "2"],
            self.env,
            ready_url=f"{self.base_url}/healthz",
        )
        self.crm = Process(
            "crm",
            [gunicorn, "ahoum.wsgi", "--bind", f"127.0.0.1:{self.crm_port}", "--workers", "1"],
            self.env,
            ready_url=f"{self.crm_url}/healthz",
        )
        self.worker = Process(
            "worker",
            [python, "manage.py", "run_worker", "--interval", "0.2"],
            self.env,
        )
        # Unbuffered, so its log is complete even though `terminate()` stops it mid-sleep.
        self.scheduler = Process(
            "scheduler",
            [python, "manage.py", "sweep", "--every", "1"],
            self.env | {"PYTHONUNBUFFERED": "1"},
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Stack:
        self._fresh_database()
        self.manage("migrate", "--no-input", "-v", "0")
        self.manage("collectstatic", "--no-input", "-v", "0")
        self.manage("setup_stripe_webhook", "--base-url", self.base_url)
        self.manage("createsuperuser", "--no-input")
        for process in (self.stripe, self.crm, self.web, self.worker, self.scheduler):
            process.start()
        return self

    def stop(self) -> None:
        for process in (self.scheduler, self.worker, self.web, self.crm, self.stripe):
            process.stop()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')

    def manage(self, *args: str) -> None:
        with (ARTIFACTS / "manage.log").open("ab") as log:
            subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=600,
            )

    def _fresh_database(self) -> None:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    # --- helpers for tests ----------------------------------------------------------------------

    def sql(self, query: str, *params) -> list[tuple]:
        """Read the app's database directly (what a person would check in the admin)."""
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def stripe_requests(self, method: str, path_prefix: str) -> list[dict]:
        recorded = requests.get(f"{self.stripe_url}/_fake/requests", timeout=5).json()["data"]
        return [r for r in recorded if r["method"] == method and r["path"].startswith(path_prefix)]
