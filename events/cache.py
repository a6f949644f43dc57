"""A cache of the public catalogue's pages that never serves a seat count the database lost.

Reads outnumber bookings by far, and the catalogue's answer is the same for every caller, so
`GET /events`, `/events/filter` and `/events/{id}` keep their response data in the shared
cache (Redis in production) under a *catalogue version*:

- Every change the catalogue shows bumps the version when its transaction commits: an
  event saved or deleted, a booking that takes or frees a seat (`bookings.services`), a
  facilitator renamed. A page built before the commit (from the rows as they were) is
  never read again. (Tests inside one never-committed transaction bump at once instead:
  the root conftest.py.)
- Two things change with time alone: a hold lapsing frees its seat, and an event that starts
  leaves the default list. A page is kept only until the next of these moments (and at most
  CATALOGUE_CACHE_SECONDS), found with two indexed queries when the page is built.

The one window left is between a commit and its bump (microseconds): a reader may get the
page from just before. The booking itself never trusts a page: it counts under the event's
lock. CATALOGUE_CACHE_SECONDS=0 turns the cache off; it must be 0 unless every process shares
the cache (the default follows REDIS_URL).

When the cache cannot be reached, pages are served from the database and a change still
commits (its bump is logged as failed); pages cached before such an outage may then outlive
a change by up to CATALOGUE_CACHE_SECONDS.
"""

import hashlib
import logging
import time
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

VERSION_KEY = "catalogue:version"

logger = logging.getLogger(__name__)


def enabled() -> bool:
    return settings.CATALOGUE_CACHE_SECONDS > 0


def invalidate() -> None:
    """Stop serving the cached pages once the current transaction commits (now, outside one).

    Several changes in one transaction (an event cancelled with its bookings) bump once.
    """
    if not enabled():
        return
    connection = transaction.get_connection()
    # Django's list of this transaction's callbacks, emptied on commit and on rollback.
    if not any(entry[1] is _bump for entry in connection.run_on_commit):
        # robust: a cache outage is logged, never turns a committed booking into an error.
        transaction.on_commit(_bump, robust=True)


def cached(request: Request, build) -> Response:
    """`build()`'s response, or the one it gave for the same URL in the same catalogue version."""
    if not enabled():
        return build()
    try:
        key = _page_key(request)
        hit = cache.get(key)
    except Exception:  # any backend's "unreachable": the database still answers
        logger.warning("catalogue cache unreachable; serving from the database", exc_info=True)
        return build()
    if hit is not None:
        return Response(hit)
    now = timezone.now()  # before reading: a moment passing while we build is still caught
    response = build()
    if response.status_code == 200:
        timeout = min(settings.CATALOGUE_CACHE_SECONDS, _seconds_until_time_changes_it(now))
        if timeout > 0:
            try:
                cache.set(key, response.data, timeout)
            except Exception:
                logger.warning("catalogue cache unreachable; page not kept", exc_info=True)
    return response


def _page_key(request: Request) -> str:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        version = cache.get(VERSION_KEY)
    # The absolute URL: `next`/`previous` links name the host and scheme the client used.
    url = hashlib.sha256(request.build_absolute_uri().encode()).hexdigest()
    return f"catalogue:{version}:{url}"


def _bump() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # never set, or evicted: any new value retires the old pages
        cache.set(VERSION_KEY, time.time_ns(), timeout=None)


def _seconds_until_time_changes_it(now: datetime) -> float:
    """Until the next hold lapses or the next event starts (either changes some page)."""
    booking_model = apps.get_model("bookings", "Booking")
    event_model = apps.get_model("events", "Event")
    moments = [
        booking_model.objects.filter(status="pending", hold_expires_at__gt=now).aggregate(
            at=Min("hold_expires_at")
        )["at"],
        event_model.objects.filter(status="scheduled", starts_at__gt=now).aggregate(
            at=Min("starts_at")
        )["at"],
    ]
    upcoming = [moment for moment in moments if moment is not None]
    if not upcoming:
        return settings.CATALOGUE_CACHE_SECONDS
    return (min(upcoming) - timezone.now()).total_seconds()
