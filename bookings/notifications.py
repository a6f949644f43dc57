"""Booking emails: queued with the change that owes them, sent by a task, never twice.

Queueing. `booking_changed` is sent inside every booking change's transaction; the receiver
here enqueues one task for a change that owes emails, which commits or rolls back with the
change. The task writes one `BookingEmail` row per email (addressed when it runs, seconds
later) and one task per email for its first attempt. No mail is sent, nor any row written
for it, inside a request or a lock.

Sending (`send_email`, the task) goes through the shared attempt mechanism
(`ahoum.attempts`): claim the next attempt in a short transaction (`running`, with a lease and
the task that takes over when it ends), send through Django's email API with no transaction
open, then record `succeeded`, or a retry at a backed-off time, or `gave_up` after
EMAIL_MAX_ATTEMPTS. Two tasks for one email never make the same attempt, and once an email
succeeded no task sends it again.

The crash window, and the trade-off chosen. A worker can die after the mail server accepted
the message but before the success is recorded. Nothing can tell that apart from a death just
before sending, so one of the two risks must be taken: resending (maybe a duplicate) or not
(maybe a lost email). The issue asks for no duplicates, so such an attempt is never repeated:
when its lease ends with no outcome recorded, the email gives up (`gave_up`, its error saying
that it may have been sent) and staff see it (at most once). A send that *raises* is
different: the backend reports it did not deliver (server down, refused, timed out), so it is
retried. The one ambiguous case left there (a connection lost after the message's final dot)
could repeat a message; every attempt carries the same Message-ID so receiving systems that
drop repeated Message-IDs can collapse it.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from ahoum import attempts
from ahoum.db import service_transaction
from bookings import emails, tasks
from bookings.models import Booking, BookingAudit, BookingEmail, EmailRecipient
from bookings.signals import booking_changed

logger = logging.getLogger(__name__)


@receiver(booking_changed, dispatch_uid="bookings.queue_booking_emails")
def queue_booking_emails(sender, booking: Booking, audit: BookingAudit, **kwargs) -> None:
    """Connected to `booking_changed`, sent inside the change's transaction: rows, no mail."""
    queue_emails(booking=booking, audit=audit)


def queue_emails(*, booking: Booking, audit: BookingAudit) -> None:
    """Enqueue the emails one booking transition owes. Call inside that change's transaction.

    Only the task is written here; it commits or rolls back with the change, and it writes
    the email rows itself (`write_owed_emails`) before their first attempts. So the request,
    inside the event's row lock, pays one INSERT and no address lookups.
    """
    if emails.emails_for_change(audit):
        tasks.send_transition_emails.enqueue(booking.pk, audit.version)


def send_transition_emails(*, booking_id: int, audit_version: int) -> list[int]:
    """Write the rows one transition owes and enqueue each one's first attempt; their ids.

    One task per email, committed with the rows: a worker that dies while sending one email
    leaves the others' tasks standing (and the one it was sending has its lease, `send_email`).
    """
    with service_transaction():
        write_owed_emails(booking_id=booking_id, audit_version=audit_version)
        owed = BookingEmail.objects.filter(booking_id=booking_id, audit_version=audit_version)
        ids = list(owed.order_by("pk").values_list("pk", flat=True))
        for email in owed.filter(attempts=0):
            attempts.schedule(email, POLICY)
    return ids


def write_owed_emails(*, booking_id: int, audit_version: int) -> None:
    """One `BookingEmail` row per email the transition owes, addressed as of now.

    The unique constraint keeps one row per transition and recipient: a task run again (or
    a signal seen twice, which enqueues a second task) inserts nothing, and `send_email`
    never repeats an attempt made or claimed.
    """
    audit = (
        BookingAudit.objects.select_related("booking__user", "booking__facilitator")
        .filter(booking_id=booking_id, version=audit_version)
        .first()
    )
    if audit is None:  # the booking was deleted since
        return
    booking, now = audit.booking, timezone.now()
    rows = [
        BookingEmail(
            booking=booking,
            audit_version=audit_version,
            recipient_kind=recipient_kind,
            kind=kind,
            to_email=(
                booking.user.email
                if recipient_kind == EmailRecipient.ATTENDEE
                else booking.facilitator.email
            ),
            next_attempt_at=now,
            created_at=now,
        )
        for recipient_kind, kind in emails.emails_for_change(audit)
    ]
    BookingEmail.objects.bulk_create(rows, ignore_conflicts=True)


def send_email(*, email_id: int, after_attempts: int) -> str:
    """Make an email's attempt number `after_attempts + 1`, unless made or not due; its status.

    Never raises for the mail server's failures: they are recorded on the row and retried.
    """
    email = attempts.claim(BookingEmail, email_id, after_attempts=after_attempts, policy=POLICY)
    if email is None:
        status = BookingEmail.objects.filter(pk=email_id).values_list("status", flat=True)
        return status.first() or "missing"
    try:
        emails.build_message(email).send()
    except Exception as error:  # any backend's failure (SMTP, an HTTP API) means "not sent"
        logger.warning(
            "email %s (%s, booking %s) attempt %s failed: %r",
            email.pk,
            email.kind,
            email.booking_id,
            email.attempts,
            error,
        )
        return attempts.record_failure(
            BookingEmail,
            email.pk,
            attempt=email.attempts,
            error=f"{type(error).__name__}: {error}",
            policy=POLICY,
        ).status
    logger.info("email %s (%s) sent on attempt %s", email.pk, email.kind, email.attempts)
    return attempts.record_success(BookingEmail, email.pk).status


def _lease() -> timedelta:
    # Longer than one attempt can take: the SMTP timeout applies per blocking operation.
    return timedelta(seconds=3 * settings.EMAIL_TIMEOUT + 60)


POLICY = attempts.Policy(
    task=tasks.send_booking_email,
    lease=_lease,
    next_attempt=attempts.backoff(
        max_attempts="EMAIL_MAX_ATTEMPTS",
        base_seconds="EMAIL_RETRY_BASE_SECONDS",
        max_seconds="EMAIL_RETRY_MAX_DELAY_SECONDS",
    ),
    # An attempt whose outcome is unknown may have been delivered: never resent (at most once).
    repeat_lost_attempts=False,
)
