"""The scheduler's safety net under the task queue: run it every few minutes.

Every task is enqueued in the transaction that makes it necessary, and every attempt has a
lease task, so nothing here is needed in normal operation. It covers what a task queue
without leases of its own cannot: a worker that died after taking a task row but before its
work claimed anything leaves that task row `RUNNING` for ever. This finds the work such a row
stood for and enqueues it again; a spare task does nothing (each names what it follows).
"""

import logging
import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connections
from django.db.models import Q

from ahoum import attempts
from bookings import notifications, services, tasks
from bookings.models import (
    Booking,
    BookingEmail,
    CheckoutSessionExpiry,
    Refund,
    StripeEventReceipt,
    WaitlistEmail,
    WaitlistEntry,
)
from bookings.services import payments, refunds, waitlist
from crm import notifier as crm_notifier
from crm.models import Delivery
from events.models import Event, EventStatus

logger = logging.getLogger(__name__)

# Rows of one kind re-enqueued per run; the next run takes the rest.
SWEEP_LIMIT = 5000
# What calls out, and how each kind is attempted.
ATTEMPTED = [
    (StripeEventReceipt, payments.EVENT_POLICY),
    (Refund, refunds.POLICY),
    (CheckoutSessionExpiry, payments.SESSION_EXPIRY_POLICY),
    (BookingEmail, notifications.POLICY),
    (WaitlistEmail, notifications.WAITLIST_POLICY),
    (Delivery, crm_notifier.POLICY),
]


class Command(BaseCommand):
    help = (
        "Enqueue again any overdue refund, email or CRM delivery, settle cancelled events and "
        "expire lapsed holds. Safe at any time and from any number of hosts."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace-seconds",
            type=int,
            default=120,
            help="How overdue a row must be before it counts as lost (default 120).",
        )
        parser.add_argument(
            "--every",
            type=float,
            default=0,
            help="Run again every this many seconds, for ever (the Procfile's scheduler); "
            "0 (default): once.",
        )

    def handle(self, *args, grace_seconds: int, every: float, **options) -> None:
        while True:
            try:
                self.sweep(grace=timedelta(seconds=grace_seconds))
            except DatabaseError as error:
                if not every:
                    raise
                logger.error("sweep failed (%s); trying again in %s s", error, every)
                for connection in connections.all():
                    connection.close()
            if not every:
                return
            time.sleep(every)

    def sweep(self, *, grace: timedelta) -> None:
        for model, policy in ATTEMPTED:
            queued = attempts.sweep_overdue(model, policy, grace=grace, limit=SWEEP_LIMIT)
            self.stdout.write(f"{model._meta.verbose_name_plural}: {queued} overdue re-enqueued")

        # Cancelled events with bookings left to cancel, or people on their waitlist to tell.
        unsettled = list(
            Event.objects.filter(status=EventStatus.CANCELLED)
            .filter(
                Q(pk__in=Booking.objects.active().values("event_id"))
                | Q(pk__in=WaitlistEntry.objects.open().values("event_id"))
            )
            .values_list("pk", flat=True)
        )
        for event_id in unsettled:
            tasks.settle_cancelled_event.enqueue(event_id)
        expired = 0
        while batch := services.expire_stale_holds():
            expired += batch
        offers_expired = 0
        while batch := waitlist.expire_stale_offers():
            offers_expired += batch
        offering = waitlist.enqueue_offers_where_due()
        self.stdout.write(
            f"cancelled events to settle: {len(unsettled)}; holds expired: {expired}; "
            f"waitlist offers expired: {offers_expired}; events offering seats: {offering}"
        )
