"""A cache of the public catalogue's pages that never serves a seat count the database lost.

Reads outnumber bookings by far, and the catalogue's answer is the same for every caller, so
`GET /events`, `/events/filter` and `/events/{id}` keep their response data in the shared
cache (Redis in production) under a *catalogue version*:

- Every change the catalogue shows bumps the version when its transaction commits: an
  event saved or deleted, a booking that takes or frees a seat (`bookings.services`), a
  facilitator renamed. A page built before the commit (from the rows as they were) is
  never read again.
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

Nobody can fill the cache from outside. A page is keyed by what it shows, never by the raw
URL: a list by its recognised parameters in one spelling per meaning (`catalogue_query` in
events/filters.py; an unknown parameter is a 400 and stores nothing), an event by its id
alone (its query string is ignored). Real filters still take endless values
(`?starts_before=` to the microsecond), so a list page is stored only at its second request
within CATALOGUE_CACHE_SECONDS: the first leaves a marker of some 100 bytes, and a scanner of
one-off queries stores no page. A list is keyed by its host only when the host is written out
in ALLOWED_HOSTS or PUBLIC_BASE_URL (its `next`/`previous` links name it); any other port or
subdomain is served from the database. As a backstop, the bytes stored per window (keys and
pages) are capped (PAGE_BYTES_PER_WINDOW): past the cap, new pages are served from the
database until the window ends, and the pages already cached keep being served.
"""

import hashlib
import logging
import pickle
import time
from datetime import datetime
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

VERSION_KEY = "catalogue:version"
# Bytes of pages stored per CATALOGUE_CACHE_SECONDS window. A page lives one window at most,
# so the catalogue never holds more than twice this in the cache, whatever anyone requests,
# and leaves room for what else the cache keeps (the throttles). A usual page (20 events) is
# about 6 KB: some 10,000 of them per window; the largest (100 events of the longest texts,
# events/models.py) about 2.2 MB.
PAGE_BYTES_PER_WINDOW = 64 * 1024 * 1024

logger = logging.getLogger(__name__)


def enabled() -> bool:
    return settings.CATALOGUE_CACHE_SECONDS > 0


def invalidate() -> None:
    """Stop serving the cached pages once the current transaction commits (now, outside one).

    Each change bumps after the commit: several in one transaction (an event cancelled with
    its bookings) bump several times, which retires the same pages, a few cache calls more.
    """
    if enabled():
        # robust: a cache outage is logged, never turns a committed booking into an error.
        transaction.on_commit(bump, robust=True)


def list_page(request: Request, query: str) -> str | None:
    """What names a list page: its address and its canonical query (filters.catalogue_query).

    The `next`/`previous` links name the scheme and host the client sent, so they are part of
    the page. Django accepts a listed host with any port (and `.example.com` any subdomain):
    only a host written out in ALLOWED_HOSTS, or PUBLIC_BASE_URL's, is cached (a handful of
    keys); any other spelling is served from the database, never someone else's links.
    """
    host = request.get_host()
    if host not in _cacheable_hosts():
        return None
    return f"list:{request.scheme}://{host}{request.path}?{query}"


def _cacheable_hosts() -> set[str]:
    hosts = {host for host in settings.ALLOWED_HOSTS if host != "*" and not host.startswith(".")}
    hosts.add(urlsplit(settings.PUBLIC_BASE_URL).netloc)
    return hosts


def event_page(event_id: int) -> str:
    """What names an event's page: its id (`/events/007` is `/events/7`)."""
    return f"event:{event_id}"


def cached(page: str | None, build, *, when_repeated: bool = False) -> Response:
    """`build()`'s response, or the one it gave for the same `page` in the same version.

    `page` comes from `list_page` or `event_page`, never from the raw URL (None: not cached).
    `when_repeated`: a page is stored only at its second request within
    CATALOGUE_CACHE_SECONDS (the first leaves a marker), so one-off queries store no page.
    """
    if page is None or not enabled():
        return build()
    try:
        key = _page_key(page)
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
                if when_repeated and _first_request(page):
                    return response
                # Pickled, as Django's cache backends store it; the key takes room too.
                size = len(key) + len(pickle.dumps(response.data, pickle.HIGHEST_PROTOCOL))
                if _within_budget(size):
                    cache.set(key, response.data, timeout)
            except Exception:
                logger.warning("catalogue cache unreachable; page not kept", exc_info=True)
    return response


def _first_request(page: str) -> bool:
    """Whether `page` is asked for the first time in CATALOGUE_CACHE_SECONDS (marks it seen).

    Not versioned: a page asked for before a change is stored at its next request.
    """
    marker = f"catalogue:seen:{hashlib.sha256(page.encode()).hexdigest()}"
    return cache.add(marker, 1, timeout=settings.CATALOGUE_CACHE_SECONDS)


def _page_key(page: str) -> str:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        version = cache.get(VERSION_KEY)
    return f"catalogue:{version}:{hashlib.sha256(page.encode()).hexdigest()}"


def _within_budget(size: int) -> bool:
    """Count a page of `size` bytes against this window's PAGE_BYTES_PER_WINDOW; whether it fits."""
    seconds = settings.CATALOGUE_CACHE_SECONDS
    window = int(time.time() // seconds)
    counter = f"catalogue:stored:{window}"
    try:
        stored = cache.incr(counter, size)
    except ValueError:  # the window's first page (or another process just made the counter)
        # Kept two windows: the counter must outlive its own window.
        stored = (
            size if cache.add(counter, size, timeout=2 * seconds) else cache.incr(counter, size)
        )
    if stored - size <= PAGE_BYTES_PER_WINDOW < stored:  # once per window
        logger.warning(
            "catalogue cache: %s bytes of pages stored in %s s, the most it keeps; new pages "
            "are served from the database until the window ends",
            PAGE_BYTES_PER_WINDOW,
            seconds,
        )
    return stored <= PAGE_BYTES_PER_WINDOW


def bump() -> None:
    """Stop serving the pages cached so far, now (`invalidate` calls it after the commit)."""
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
