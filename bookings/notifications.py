"""Booking and waitlist emails: queued with the change that owes them, sent by a task, never
twice.

Queueing. Every booking change's audit row (`bookings.services.booking.audit`) calls
`queue_emails` inside the change's transaction: one `BookingEmail` row per email the change
owes, and one task per email for its first attempt, all committed or rolled back with it.
Every waitlist change (`bookings.services.waitlist`) calls `queue_waitlist_emails` the same
way: a `WaitlistEmail` row for the person waiting when the change owes one (joined, offered,
expired; `bookings.waitlist_emails`). No mail is sent inside a request or a lock.

Sending (`send_email` and `send_waitlist_email`, the tasks) goes through the shared attempt
mechanism (`ahoum.attempts`): claim the next attempt in a short transaction (`running`, with a
lease and the task that takes over when it ends), send through Django's email API with no
transaction open, then record `succeeded`, or a retry at a backed-off time, or `gave_up` after
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
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.utils import timezone

from ahoum import attempts
from ahoum.db import service_transaction
from bookings import emails, tasks, waitlist_emails
from bookings.models import (
    Booking,
    BookingAudit,
    BookingEmail,
    EmailRecipient,
    WaitlistEmail,
    WaitlistEmailKind,
    WaitlistEntry,
)

User = get_user_model()

logger = logging.getLogger(__name__)


def queue_emails(*, booking: Booking, audit: BookingAudit) -> list[BookingEmail]:
    """Write the emails one booking transition owes, each with its first attempt's task.

    Call inside that change's transaction: the rows and tasks commit with the change or not
    at all, so an email owed always exists as a row (which the sweep and staff can see), even
    if its task is lost. One address query for the booker and the facilitator, and one
    attendee query when the change owes the guests of a group booking emails of their own.
    """
    owed = emails.emails_for_change(audit)
    if not owed:
        return []
    addresses = dict(
        User.objects.filter(pk__in=[booking.user_id, booking.facilitator_id]).values_list(
            "pk", "email"
        )
    )
    booker_email = addresses.get(booking.user_id, "")
    now = timezone.now()
    rows = []
    for recipient_kind, kind in owed:
        if recipient_kind == EmailRecipient.GUEST:
            # One row per transition and guest (a unique constraint), with their own invite.
            guests = emails.guests_for_change(booking, audit, booker_email)
            rows += [
                BookingEmail(
                    booking=booking,
                    audit_version=audit.version,
                    recipient_kind=recipient_kind,
                    attendee=guest,
                    kind=kind,
                    to_email=guest.email,
                    next_attempt_at=now,
                    created_at=now,
                )
                for guest in guests
            ]
            continue
        # One row per transition and recipient (a unique constraint): called once per audit row.
        rows.append(
            BookingEmail(
                booking=booking,
                audit_version=audit.version,
                recipient_kind=recipient_kind,
                kind=kind,
                to_email=addresses.get(
                    booking.user_id
                    if recipient_kind == EmailRecipient.ATTENDEE
                    else booking.facilitator_id,
                    "",
                ),
                next_attempt_at=now,
                created_at=now,
            )
        )
    rows = BookingEmail.objects.bulk_create(rows)
    for email in rows:
        attempts.schedule(email, POLICY)
    return rows


def send_transition_emails(*, booking_id: int, audit_version: int) -> list[int]:
    """Write the rows one transition owes, if missing, with their tasks; their ids.

    The rows are now written with the change itself (`queue_emails`); this runs only the
    `send_transition_emails` tasks enqueued before that, so none of their emails is lost.
    """
    with service_transaction():
        audit = (
            BookingAudit.objects.select_related("booking")
            .filter(booking_id=booking_id, version=audit_version)
            .first()
        )
        if audit is None:  # the booking was deleted since
            return []
        owed = BookingEmail.objects.filter(booking_id=booking_id, audit_version=audit_version)
        if not owed.exists():
            queue_emails(booking=audit.booking, audit=audit)
        return list(owed.order_by("pk").values_list("pk", flat=True))


def send_email(*, email_id: int, after_attempts: int) -> str:
    """Make an email's attempt number `after_attempts + 1`, unless made or not due; its status.

    Never raises for the mail server's failures: they are recorded on the row and retried.
    """
    return _send(BookingEmail, email_id, after_attempts, POLICY, emails.build_message)


def queue_waitlist_emails(*, entry: WaitlistEntry, change: str) -> list[WaitlistEmail]:
    """Write the email one waitlist change owes the person waiting, if any, with its task.

    Call inside that change's transaction (`waitlist._announce` does): the row and its task
    commit with the change or not at all. One row per (entry, version), which every change
    raises. A joined email keeps the place the person took, counted here, in the transaction
    that put them in line.
    """
    kind = waitlist_emails.kind_for_change(change)
    if kind is None:
        return []
    position = None
    if kind == WaitlistEmailKind.JOINED:
        # Here, not at the top: the waitlist service imports this module.
        from bookings.services import waitlist

        position = waitlist.position(entry)
    to_email = User.objects.filter(pk=entry.user_id).values_list("email", flat=True).first()
    now = timezone.now()
    email = WaitlistEmail.objects.create(
        entry=entry,
        entry_version=entry.version,
        kind=kind,
        to_email=to_email or "",
        position=position,
        next_attempt_at=now,
        created_at=now,
    )
    attempts.schedule(email, WAITLIST_POLICY)
    return [email]


def send_waitlist_email(*, email_id: int, after_attempts: int) -> str:
    """`send_email` for a waitlist email: attempted the same way, at most once."""
    return _send(
        WaitlistEmail, email_id, after_attempts, WAITLIST_POLICY, waitlist_emails.build_message
    )


def _send(
    model: type[BookingEmail | WaitlistEmail],
    email_id: int,
    after_attempts: int,
    policy: attempts.Policy,
    build: Callable[[Any], EmailMessage],
) -> str:
    email = attempts.claim(model, email_id, after_attempts=after_attempts, policy=policy)
    if email is None:
        status = model.objects.filter(pk=email_id).values_list("status", flat=True)
        return status.first() or "missing"
    try:
        build(email).send()
    except Exception as error:  # any backend's failure (SMTP, an HTTP API) means "not sent"
        logger.warning(
            "%s %s (%s) attempt %s failed: %r",
            model.__name__,
            email.pk,
            email.kind,
            email.attempts,
            error,
        )
        return attempts.record_failure(
            model,
            email.pk,
            attempt=email.attempts,
            error=f"{type(error).__name__}: {error}",
            policy=policy,
        ).status
    logger.info(
        "%s %s (%s) sent on attempt %s", model.__name__, email.pk, email.kind, email.attempts
    )
    return attempts.record_success(model, email.pk).status


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


WAITLIST_POLICY = attempts.Policy(
    task=tasks.send_waitlist_email,
    lease=_lease,
    next_attempt=POLICY.next_attempt,
    repeat_lost_attempts=False,  # as booking emails: never resent once the outcome is unknown
)
