"""Booking emails: queued with the change that owes them, sent by a task, never twice.

Queueing. `booking_changed` is sent inside every booking change's transaction; the receiver
here enqueues one task for a change that owes emails, which commits or rolls back with the
change. The task writes one `BookingEmail` row per email (addressed when it runs, seconds
later) and one task per email for its first attempt. No mail is sent, nor any row written
for it, inside a request or a lock.

Sending (`send_email`, the task). Each task names the attempt count it follows, as refunds
and CRM deliveries do. It claims the next attempt in a short transaction (status `sending`,
attempts + 1, a lease), sends through Django's email API with no transaction open, then
records the outcome in another: `sent`, or `failed` with a retry task at a backed-off time,
or `gave_up` after EMAIL_MAX_ATTEMPTS. Two tasks for one email never make the same attempt,
and once an email is `sent` no task sends it again.

The crash window, and the trade-off chosen. A worker can die after the mail server accepted
the message but before `sent` is recorded. Nothing can tell that apart from a death just
before sending, so one of the two risks must be taken: resending (maybe a duplicate) or not
(maybe a lost email). The issue asks for no duplicates, so the claim is never retried: when
its lease ends with no outcome recorded, the task enqueued with the claim marks the email
`unconfirmed` and logs an error for staff, and it is not sent again (at most once). A send
that *raises* is different: the backend reports it did not deliver (server down, refused,
timed out), so it is retried. The one ambiguous case left there (a connection lost after the
message's final dot) could repeat a message; every attempt carries the same Message-ID so
receiving systems that drop repeated Message-IDs can collapse it.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from ahoum.db import service_transaction
from ahoum.retry import backoff_seconds
from bookings import emails, tasks
from bookings.models import Booking, BookingAudit, BookingEmail, EmailRecipient, EmailStatus
from bookings.signals import booking_changed

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


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
        for email_id in ids:
            tasks.send_booking_email.enqueue(email_id, 0)
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
    email = _claim_attempt(email_id=email_id, after_attempts=after_attempts)
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
        return _record_failure(
            email_id=email.pk, attempt=email.attempts, error=f"{type(error).__name__}: {error}"
        ).status
    return _record_sent(email_id=email.pk, attempt=email.attempts).status


def _claim_attempt(*, email_id: int, after_attempts: int) -> BookingEmail | None:
    """Count the next attempt as started, if it is due and nobody started it. None: skip.

    The claim enqueues a task for when its lease ends. If the outcome was recorded by then,
    that task finds the row moved on (sent, or a retry scheduled) and does nothing; if not,
    the worker died mid-attempt and the email is marked `unconfirmed`, never resent.
    """
    now = timezone.now()
    with service_transaction():
        email = BookingEmail.objects.select_for_update().filter(pk=email_id).first()
        if email is None or email.attempts != after_attempts:
            return None  # another task made this attempt
        if email.status == EmailStatus.SENDING:
            if email.next_attempt_at and email.next_attempt_at > now:
                return None  # the attempt is still within its lease
            email.status = EmailStatus.UNCONFIRMED
            email.next_attempt_at = None
            email.save(update_fields=["status", "next_attempt_at", "updated_at"])
            logger.error(
                "email %s (%s, booking %s): attempt %s never finished; it may or may not have "
                "been sent, and is not sent again",
                email.pk,
                email.kind,
                email.booking_id,
                email.attempts,
            )
            return None
        if email.status not in (EmailStatus.PENDING, EmailStatus.FAILED):
            return None
        if email.next_attempt_at and email.next_attempt_at > now:
            return None  # the next attempt is scheduled later
        email.status = EmailStatus.SENDING
        email.attempts += 1
        email.last_attempt_at = now
        email.next_attempt_at = now + _attempt_lease()
        email.save(
            update_fields=["status", "attempts", "last_attempt_at", "next_attempt_at", "updated_at"]
        )
        tasks.send_booking_email.using(run_after=email.next_attempt_at).enqueue(
            email.pk, email.attempts
        )
    return email


def _record_sent(*, email_id: int, attempt: int) -> BookingEmail:
    """The backend accepted attempt number `attempt`: the email is sent, whatever else happened."""
    now = timezone.now()
    with service_transaction():
        email = BookingEmail.objects.select_for_update().get(pk=email_id)
        # Even if the lease ran out meanwhile (marked unconfirmed): the truth is known now.
        email.status = EmailStatus.SENT
        email.sent_at = now
        email.last_error = ""
        email.next_attempt_at = None
        email.save(
            update_fields=["status", "sent_at", "last_error", "next_attempt_at", "updated_at"]
        )
    logger.info("email %s (%s) sent on attempt %s", email.pk, email.kind, attempt)
    return email


def _record_failure(*, email_id: int, attempt: int, error: str) -> BookingEmail:
    """Attempt number `attempt` did not send: schedule the next one, or give up."""
    now = timezone.now()
    with service_transaction():
        email = BookingEmail.objects.select_for_update().get(pk=email_id)
        if email.attempts != attempt or email.status not in (
            EmailStatus.SENDING,
            EmailStatus.UNCONFIRMED,  # its lease ran out, but it failed: certainly not sent
        ):
            return email
        email.last_error = error[:MAX_ERROR_LENGTH]
        retry_at = _next_attempt_time(email.attempts, now)
        email.next_attempt_at = retry_at
        if retry_at is None:
            email.status = EmailStatus.GAVE_UP
            logger.error(
                "email %s (%s, booking %s) gave up after %s attempts: %s",
                email.pk,
                email.kind,
                email.booking_id,
                email.attempts,
                email.last_error,
            )
        else:
            email.status = EmailStatus.FAILED
            tasks.send_booking_email.using(run_after=retry_at).enqueue(email.pk, email.attempts)
        email.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
    return email


def _next_attempt_time(attempts: int, now: datetime) -> datetime | None:
    """Exponential backoff with jitter; None once EMAIL_MAX_ATTEMPTS were made."""
    if attempts >= settings.EMAIL_MAX_ATTEMPTS:
        return None
    delay = backoff_seconds(
        attempts,
        base_seconds=settings.EMAIL_RETRY_BASE_SECONDS,
        max_seconds=settings.EMAIL_RETRY_MAX_DELAY_SECONDS,
    )
    return now + timedelta(seconds=delay)


def _attempt_lease() -> timedelta:
    # Longer than one attempt can take: the SMTP timeout applies per blocking operation.
    return timedelta(seconds=3 * settings.EMAIL_TIMEOUT + 60)
