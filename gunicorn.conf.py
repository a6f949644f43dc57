"""gunicorn settings (read automatically from the working directory)."""

import logging
import multiprocessing
import os
import traceback

from gunicorn.workers.sync import SyncWorker

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Sync workers: the API is short database-bound requests. 2 x cores + 1 is gunicorn's advice.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Under Heroku's router timeout (30 s, after which the router answers an HTML error page of its
# own), so a request cut here still gets this server's JSON answer (worker_abort below).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "28"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# The longest request line gunicorn reads (its maximum; Heroku's router also allows 8 KB):
# the API's own checks then answer a long query string with a JSON 400 naming what is wrong.
# Longer still gets gunicorn's plain 414.
limit_request_line = 8190
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Every request ends before `timeout` ----------------------------------------------------
# gunicorn aborts a sync worker that has been busy with one request for `timeout` seconds, and
# answers with an HTML page of its own. So every wait a web request makes is bounded, and the
# bounds add up to less than `timeout`. The longest request is the booking of a paid event:
# a service transaction (the hold), one Stripe call (the Checkout Session), another service
# transaction (attaching the session, or releasing the hold). Each statement is cut at the
# statement timeout (a row-lock wait at LOCK_TIMEOUT_MS too, whichever is shorter) and answers
# 503 `timeout`; the Stripe call is cut at the Stripe timeout for connecting and again for
# reading, and not repeated in a request (the person can retry; the task worker repeats its
# own calls). With the defaults: 2 x 5 s + 2 x 7 s = 24 s, under 28 s.
WEB_STATEMENT_TIMEOUT_MS = int(os.environ.get("WEB_STATEMENT_TIMEOUT_MS", "5000"))
WEB_STRIPE_TIMEOUT_SECONDS = float(os.environ.get("WEB_STRIPE_TIMEOUT_SECONDS", "7"))
LONGEST_REQUEST_SECONDS = 2 * WEB_STATEMENT_TIMEOUT_MS / 1000 + 2 * WEB_STRIPE_TIMEOUT_SECONDS
if WEB_STATEMENT_TIMEOUT_MS <= 0 or WEB_STRIPE_TIMEOUT_SECONDS <= 0:
    raise RuntimeError("WEB_STATEMENT_TIMEOUT_MS and WEB_STRIPE_TIMEOUT_SECONDS must be > 0.")
if timeout and timeout <= LONGEST_REQUEST_SECONDS:
    raise RuntimeError(
        f"GUNICORN_TIMEOUT={timeout} leaves no room for a booking request: "
        f"2 x WEB_STATEMENT_TIMEOUT_MS ({WEB_STATEMENT_TIMEOUT_MS} ms) + "
        f"2 x WEB_STRIPE_TIMEOUT_SECONDS ({WEB_STRIPE_TIMEOUT_SECONDS:g} s) must be shorter."
    )
# Set in the environment before the app is loaded, under the names ahoum/settings.py reads, in
# web processes only: the task worker, the scheduler and migrations keep their own
# (DATABASE_STATEMENT_TIMEOUT_MS 0, STRIPE_TIMEOUT_SECONDS, STRIPE_MAX_NETWORK_RETRIES).
raw_env = [
    f"DATABASE_STATEMENT_TIMEOUT_MS={WEB_STATEMENT_TIMEOUT_MS}",
    f"STRIPE_TIMEOUT_SECONDS={WEB_STRIPE_TIMEOUT_SECONDS:g}",
    "STRIPE_MAX_NETWORK_RETRIES=0",
]


def worker_abort(worker) -> None:
    """A request ran past `timeout` anyway (a bug, a database slow at every statement).

    gunicorn's own handling exits from the signal handler, and its worker then writes an HTML
    500. A sync worker runs its request in the thread that gets the signal, so raising
    `RequestTimedOut` here ends the request where it is, as any error would: Django and DRF
    answer the JSON 503 `timeout` (a JSON 500 outside DRF's views), and transactions still open
    roll back. gunicorn has marked the worker as stopping, so it exits after that answer; the
    heartbeat sent here keeps the arbiter from killing it (SIGKILL) before the answer is out.
    A worker still booting, or another worker class, takes gunicorn's own way.
    https://docs.gunicorn.org/en/stable/settings.html#worker-abort
    """
    if not (isinstance(worker, SyncWorker) and worker.booted):
        return
    from ahoum.errors import RequestTimedOut

    logging.getLogger("ahoum.request").error(
        "request stopped at the worker timeout (GUNICORN_TIMEOUT)",
        extra={"timeout_seconds": timeout, "stack": "".join(traceback.format_stack())},
    )
    worker.notify()
    raise RequestTimedOut()
