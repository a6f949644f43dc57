"""django-tasks-db's `db_worker`, restarted in the same process when the database goes away.

The library's worker re-raises a lost connection (`OperationalError`, `InterfaceError`) and
exits, so a three-second database outage would stop all background work until someone
restarted it. This runs the library's own command (`call_command`, nothing private) in a loop:
on a database error it closes the broken connections, waits (backing off up to
`--max-wait` seconds) and runs it again. A task that was running when the connection died
is taken over by its own lease task (`ahoum.attempts`). Signals still stop it: the library's
handlers exit with SystemExit, which is never caught here.
"""

import contextlib
import logging
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import DatabaseError, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the task worker (db_worker), waiting and reconnecting when the database is lost."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=1, help="Seconds between polls.")
        parser.add_argument(
            "--max-wait", type=float, default=30, help="Longest wait between reconnections."
        )
        parser.add_argument("--queue-name", default="default")
        parser.add_argument(
            "--max-restarts",
            type=int,
            default=None,
            help="Re-raise the database error once restarted this many times (default: never).",
        )

    def handle(self, *args, interval: float, max_wait: float, queue_name: str,
               max_restarts: int | None, **options) -> None:  # fmt: skip
        restarts, wait = 0, 0.5
        while True:
            started = time.monotonic()
            try:
                call_command(
                    "db_worker",
                    interval=interval,
                    queue_name=queue_name,
                    startup_delay=False,
                    reload=False,
                    verbosity=options["verbosity"],
                )
                return  # the worker stopped on its own (it does not, unless told to)
            except (OperationalError, InterfaceError) as error:
                restarts += 1
                if time.monotonic() - started > 60:
                    wait = 0.5  # it ran fine for a while: a new outage, start small again
                logger.error("worker lost the database (%s); reconnecting in %.1f s", error, wait)
                if max_restarts is not None and restarts > max_restarts:
                    raise
                for connection in connections.all():
                    with contextlib.suppress(DatabaseError):  # broken: reopened on next use
                        connection.close()
                time.sleep(wait)
                wait = min(wait * 2, max_wait)
