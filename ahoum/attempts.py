"""One way to call the outside world and be sure it happens: refunds, CRM deliveries, emails.

Everything that must reach Stripe, a CRM or a mail server is a row whose model has the
`Attempted` fields, and goes through the functions here:

1. `schedule()`, inside the transaction that makes the call necessary: the row is pending
   and the task that will attempt it is enqueued with it (both commit or neither does).
2. `claim()`, in a short transaction of its own under the row's lock: the attempt is counted
   as started (`running`) with a *lease*, and the task that takes over when the lease ends is
   enqueued in that same transaction.
3. The call, with no transaction open.
4. `record_success()` or `record_failure()` in another short transaction: `succeeded`; or
   `pending` again with the next time and its task; or `gave_up`, which staff see.

A process can die at any line of that. Before the claim commits: the task that was enqueued
with the row (or with the previous outcome) is still there, or the sweep
(`sweep_overdue()`, `manage.py sweep`) finds the overdue row. After the claim, during the
call, or after the answer but before its outcome was recorded: the lease task finds the row
still `running` once the lease has ended and makes the attempt again. Each kind makes that
repetition harmless in its own way (its `Policy` and its caller): a refund repeats the Stripe
idempotency key of the attempt whose outcome is unknown (`failures` has not moved), so Stripe
answers with the stored result; a CRM delivery keeps its `webhook-id`, which the receiver
deduplicates; an email is never repeated once its outcome is unknown (at most once: it gives
up instead and says so).

Tasks name the attempt count they follow (`after_attempts`), so two tasks for one row never
make the same attempt; a duplicate task does nothing.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from ahoum.db import service_transaction
from ahoum.retry import backoff_seconds

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


class AttemptStatus(models.TextChoices):
    PENDING = "pending", "Pending (first attempt or a retry is scheduled)"
    RUNNING = "running", "Running (an attempt is under way)"
    SUCCEEDED = "succeeded", "Succeeded"
    GAVE_UP = "gave_up", "Gave up (staff must act)"


class Attempted(models.Model):
    """The attempt fields every call-out row has. Change them only through this module."""

    status = models.CharField(
        max_length=20, choices=AttemptStatus.choices, default=AttemptStatus.PENDING
    )
    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts started, a repeat after a lost lease included."
    )
    failures = models.PositiveIntegerField(
        default=0, help_text="Attempts that ended with a known failure."
    )
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Pending: when the next attempt may start. Running: when its lease ends.",
    )
    succeeded_at = models.DateTimeField(null=True, blank=True)
    gave_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_settled(self) -> bool:
        return self.status in (AttemptStatus.SUCCEEDED, AttemptStatus.GAVE_UP)


Row = TypeVar("Row", bound=Attempted)


@dataclass(frozen=True)
class Policy:
    """How one kind of row is attempted. Callables, so settings are read when used."""

    # The task making an attempt; called as task.enqueue(row.pk, after_attempts).
    task: Any
    # How long an attempt may take before it counts as lost (longer than any call can last).
    lease: Callable[[], timedelta]
    # When the next attempt may start after a failure (None: give up). Arguments: the row
    # (with `attempts` and `failures` updated), now, and the server's Retry-After in seconds.
    next_attempt: Callable[[Any, datetime, float | None], datetime | None]
    # False: an attempt whose outcome is unknown is never repeated (at most once).
    repeat_lost_attempts: bool = True
    # Called inside the transaction that gives a row up (e.g. a refund opens a payment issue).
    on_give_up: Callable[[Any], None] = field(default=lambda row: None)


def backoff(
    *, max_attempts: str, base_seconds: str, max_seconds: str
) -> Callable[[Any, datetime, float | None], datetime | None]:
    """A `Policy.next_attempt` from three settings' names (read when used): exponential
    backoff with jitter, at least the server's Retry-After, at most `max_attempts` in all."""

    def next_attempt(row: Attempted, now: datetime, retry_after: float | None) -> datetime | None:
        if row.attempts >= getattr(settings, max_attempts):
            return None
        delay = backoff_seconds(
            row.attempts,
            base_seconds=getattr(settings, base_seconds),
            max_seconds=getattr(settings, max_seconds),
        )
        return now + timedelta(seconds=max(delay, retry_after or 0))

    return next_attempt


def schedule(row: Attempted, policy: Policy, *, at: datetime | None = None) -> None:
    """Make a new (saved) pending row's first attempt due at `at` (now). Inside its transaction."""
    if at is None:
        policy.task.enqueue(row.pk, row.attempts)
    else:
        policy.task.using(run_after=at).enqueue(row.pk, row.attempts)


def claim(model: type[Row], pk: int, *, after_attempts: int, policy: Policy) -> Row | None:
    """Start attempt number `after_attempts + 1` if it is due and nobody started it; or None.

    A row still `running` past its lease lost its attempt (the process died): the attempt is
    made again, or, for a kind that never repeats one, the row gives up.
    """
    now = timezone.now()
    with service_transaction():
        row = model.objects.select_for_update().filter(pk=pk).first()
        if row is None or row.attempts != after_attempts:
            return None  # gone, or another task made this attempt
        if row.status == AttemptStatus.RUNNING:
            if row.next_attempt_at and row.next_attempt_at > now:
                return None  # the attempt is still within its lease
            lost = f"attempt {row.attempts} never finished (its process stopped or hung)"
            logger.warning("%s #%s: %s", model.__name__, row.pk, lost)
            if not policy.repeat_lost_attempts:
                _give_up(row, error=f"{lost}; it may have happened and is not repeated",
                         policy=policy, now=now)  # fmt: skip
                return None
            if policy.next_attempt(row, now, None) is None:
                _give_up(row, error=lost, policy=policy, now=now)
                return None
            row.last_error = lost
        elif row.status != AttemptStatus.PENDING:
            return None  # succeeded or given up
        elif row.next_attempt_at and row.next_attempt_at > now:
            return None  # the next attempt is scheduled later, with its own task
        row.status = AttemptStatus.RUNNING
        row.attempts += 1
        row.last_attempt_at = now
        row.next_attempt_at = now + policy.lease()
        row.save(
            update_fields=[
                "status", "attempts", "last_error", "last_attempt_at", "next_attempt_at",
                "updated_at",
            ]
        )  # fmt: skip
        policy.task.using(run_after=row.next_attempt_at).enqueue(row.pk, row.attempts)
    return row


def succeed(row: Attempted, *, now: datetime, **fields: Any) -> bool:
    """Mark a row the caller has locked `succeeded` (with `fields`); False if it already was.

    Even after its lease ended or it gave up: the outcome is known now, and it is the truth.
    """
    if row.status == AttemptStatus.SUCCEEDED:
        return False
    row.status = AttemptStatus.SUCCEEDED
    row.succeeded_at = now
    row.next_attempt_at = None
    row.gave_up_at = None
    row.last_error = ""
    for name, value in fields.items():
        setattr(row, name, value)
    row.save(
        update_fields=[
            "status", "succeeded_at", "next_attempt_at", "gave_up_at", "last_error",
            "updated_at", *fields,
        ]
    )  # fmt: skip
    return True


def record_success(model: type[Row], pk: int, **fields: Any) -> Row:
    """The call succeeded: mark the row `succeeded`, in a transaction of its own."""
    with service_transaction():
        row = model.objects.select_for_update().get(pk=pk)
        succeed(row, now=timezone.now(), **fields)
    return row


def record_failure(
    model: type[Row],
    pk: int,
    *,
    attempt: int,
    error: str,
    policy: Policy,
    retryable: bool = True,
    retry_after: float | None = None,
    outcome_known: bool = True,
    **fields: Any,
) -> Row:
    """Attempt number `attempt` failed: schedule the next one (with its task), or give up.

    `outcome_known=False` (a timeout, a connection lost mid-call: the other side may have
    acted) leaves `failures` as it is, so a kind keyed on it (a refund's idempotency key)
    repeats the same request. Nothing changes if the row moved on meanwhile (a later
    attempt, success, or staff), except that a row which gave up because this attempt's
    lease ended without an outcome (at most once) is retried: it certainly did not happen.
    """
    now = timezone.now()
    with service_transaction():
        row = model.objects.select_for_update().get(pk=pk)
        lost_then_failed = (
            row.status == AttemptStatus.GAVE_UP
            and not policy.repeat_lost_attempts
            and outcome_known
            and row.attempts == attempt
        )
        if (row.status != AttemptStatus.RUNNING and not lost_then_failed) or (
            row.attempts != attempt
        ):
            return row
        if outcome_known:
            row.failures += 1
        row.last_error = error[:MAX_ERROR_LENGTH]
        for name, value in fields.items():
            setattr(row, name, value)
        retry_at = policy.next_attempt(row, now, retry_after) if retryable else None
        if retry_at is None:
            _give_up(row, error=row.last_error, policy=policy, now=now, fields=fields)
            return row
        row.status = AttemptStatus.PENDING
        row.next_attempt_at = retry_at
        row.gave_up_at = None
        row.save(
            update_fields=[
                "status", "failures", "last_error", "next_attempt_at", "gave_up_at",
                "updated_at", *fields,
            ]
        )  # fmt: skip
        policy.task.using(run_after=retry_at).enqueue(row.pk, row.attempts)
    logger.warning(
        "%s #%s attempt %s failed (%s); retry at %s",
        model.__name__,
        pk,
        attempt,
        row.last_error,
        retry_at.isoformat(),
    )
    return row


def give_up(row: Attempted, *, error: str, policy: Policy, now: datetime) -> None:
    """Stop attempting a row the caller has locked (nothing left to try); staff see it."""
    _give_up(row, error=error[:MAX_ERROR_LENGTH], policy=policy, now=now)


def reopen(model: type[Row], pk: int, *, policy: Policy, **fields: Any) -> Row | None:
    """Staff: attempt a given-up (or pending) row again now, with `fields` changed; or None."""
    now = timezone.now()
    with service_transaction():
        row = model.objects.select_for_update().get(pk=pk)
        if row.status in (AttemptStatus.SUCCEEDED, AttemptStatus.RUNNING):
            return None
        row.status = AttemptStatus.PENDING
        row.next_attempt_at = now
        row.gave_up_at = None
        for name, value in fields.items():
            setattr(row, name, value)
        row.save(update_fields=["status", "next_attempt_at", "gave_up_at", "updated_at", *fields])
        policy.task.enqueue(row.pk, row.attempts)
    return row


def sweep_overdue(
    model: type[Attempted], policy: Policy, *, grace: timedelta, limit: int = 500
) -> int:
    """Enqueue an attempt task for rows overdue by more than `grace`; how many.

    The safety net under the tasks: a worker that died after it took a task row but before it
    claimed the attempt leaves that task row stuck, and its row overdue. A spare task is
    harmless (it names the attempt count it follows).
    """
    cutoff = timezone.now() - grace
    overdue = (
        model.objects.filter(
            status__in=[AttemptStatus.PENDING, AttemptStatus.RUNNING], next_attempt_at__lte=cutoff
        )
        .order_by("next_attempt_at")
        .values_list("pk", "attempts")[:limit]
    )
    rows = list(overdue)
    for pk, attempts in rows:
        policy.task.enqueue(pk, attempts)
    return len(rows)


def _give_up(
    row: Attempted, *, error: str, policy: Policy, now: datetime, fields: dict | None = None
) -> None:
    row.status = AttemptStatus.GAVE_UP
    row.last_error = error
    row.next_attempt_at = None
    row.gave_up_at = now
    row.save(
        update_fields=[
            "status", "failures", "last_error", "next_attempt_at", "gave_up_at", "updated_at",
            *(fields or {}),
        ]
    )  # fmt: skip
    logger.error(
        "%s #%s gave up after %s attempts: %s", type(row).__name__, row.pk, row.attempts, error
    )
    policy.on_give_up(row)
