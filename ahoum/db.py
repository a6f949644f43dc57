"""The transaction every state-changing service runs in."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection, transaction

from ahoum.errors import Deadlock, StatementTimeout, TryAgain

# PostgreSQL's lock_not_available; SQLite reports its busy timeout as "database is locked".
LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"
# query_canceled: statement_timeout (DATABASE_STATEMENT_TIMEOUT_MS) or pg_cancel_backend().
QUERY_CANCELED = "57014"


def database_timeout(error: OperationalError) -> TryAgain | None:
    """The "try again" answer a database error means, if it is a timeout or a deadlock."""
    sqlstate = getattr(error.__cause__, "sqlstate", None)
    if sqlstate == LOCK_NOT_AVAILABLE or "database is locked" in str(error):
        return TryAgain()
    if sqlstate == DEADLOCK_DETECTED:
        return Deadlock()
    if sqlstate == QUERY_CANCELED:
        return StatementTimeout()
    return None


@contextmanager
def service_transaction() -> Iterator[None]:
    """One transaction whose lock waits are bounded; a timeout becomes `TryAgain`.

    A deadlock PostgreSQL broke by rolling this transaction back becomes `Deadlock` (a
    `TryAgain`, so a 503 unless the service tries again itself), and a statement cancelled by
    the web processes' statement timeout `StatementTimeout` (a 503 too).

    A service is a whole operation: views, tasks and commands call it outside any
    transaction, so it commits when it returns. The admin's and the back office's forms are
    the one caller inside a transaction (Django's change form wraps its POST in one): there the
    service is a savepoint of it, and commits with the form. On PostgreSQL `SET LOCAL
    lock_timeout` bounds how long a `select_for_update()` waits, so a hot row gives a clean
    503 instead of piling up workers.
    """
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = {int(settings.LOCK_TIMEOUT_MS)}")
            yield
    except OperationalError as error:
        timeout = database_timeout(error)
        if timeout is None:
            raise
        raise timeout from error
