"""Background work for bookings, run by `python manage.py db_worker`.

Tasks are enqueued inside the transaction that makes them necessary, so they exist exactly
when that change committed. Each one is safe to run twice.
"""

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

# Holds lapsed by a sweep's run, marked per run; a full batch enqueues the next sweep at once.
SWEEP_BATCH = 500
# Money owed back goes first (django-tasks runs a higher priority first; the default is 0):
# a worker takes a refund attempt, and the batches of a cancelled event that owe refunds,
# before the emails, CRM deliveries and session expiries queued with them. Cancelling an event
# of 2,000 paid bookings makes 6 tasks per booking; in arrival order the last refund would wait
# behind nearly all of them; in this order, behind the other refunds and the batches only.
# The same priority for both keeps arrival order between them: a batch's refunds before the
# next batch (which holds the event's lock that recording a refund takes).
MONEY_PRIORITY = 10


@task()
def expire_lapsed_holds() -> int:
    """Mark the holds lapsed by now `expired` (enqueued for after they lapse); how many."""
    from bookings import services

    expired = services.expire_stale_holds(limit=SWEEP_BATCH)
    if expired >= SWEEP_BATCH:
        expire_lapsed_holds.enqueue()  # more may be waiting
    return expired


@task()
def expire_hold(booking_id: int) -> bool:
    """Mark one lapsed unpaid hold `expired`.

    No longer enqueued (holds share sweeps, `expire_lapsed_holds`); kept so that tasks
    enqueued before that change still run.
    """
    from bookings import services

    return services.expire_hold(booking_id=booking_id)


@task(priority=MONEY_PRIORITY)
def process_refund(refund_id: int, after_attempts: int) -> str:
    """Make a refund's next attempt through Stripe, unless another task made it; its status."""
    from bookings.services import refunds

    return refunds.attempt_refund(refund_id=refund_id, after_attempts=after_attempts).status


@task()
def attempt_session_expiry(expiry_id: int, after_attempts: int) -> str:
    """Expire a Checkout Session that must no longer be paid, unless another task did."""
    from bookings.services import payments

    return payments.attempt_session_expiry(expiry_id=expiry_id, after_attempts=after_attempts)


# Bookings of a cancelled event cancelled per transaction.
SETTLE_BATCH = 200
# After this long, a batch whose worker died is taken over by the next task.
SETTLE_LEASE_SECONDS = 300


@task(priority=MONEY_PRIORITY)
def settle_cancelled_event(event_id: int, by_id: int | None = None) -> int:
    """Cancel the next batch of a cancelled event's bookings (refunds owed); how many.

    Before each batch, a task is enqueued for when its lease ends: a worker that dies in the
    batch rolls it back, and that task starts it again. Batches continue while any is left;
    then the people still on its waitlist are told it ended, in batches too.
    """
    from bookings import services
    from bookings.models import Booking
    from bookings.services import waitlist

    if not Booking.objects.filter(event_id=event_id).active().exists():
        # The bookings are done: the people on its waitlist are told, a batch at a time.
        if waitlist.end_for_cancelled_event(event_id=event_id, limit=SETTLE_BATCH) >= SETTLE_BATCH:
            settle_cancelled_event.enqueue(event_id, by_id)
        return 0
    takeover_at = timezone.now() + timedelta(seconds=SETTLE_LEASE_SECONDS)
    settle_cancelled_event.using(run_after=takeover_at).enqueue(event_id, by_id)
    cancelled = services.settle_cancelled_event(event_id=event_id, by_id=by_id, limit=SETTLE_BATCH)
    if cancelled >= SETTLE_BATCH or waitlist.has_open_entries(event_id):
        settle_cancelled_event.enqueue(event_id, by_id)  # more may be left, or the waitlist
    return cancelled


@task()
def apply_stripe_event(event_id: str) -> None:
    """Apply a verified Stripe webhook event (stored by dj-stripe) to its booking.

    No longer enqueued (events are applied through `attempt_stripe_event`); kept so that
    tasks enqueued before that change still run.
    """
    from bookings.services import payments

    payments.apply_stripe_event(event_id=event_id)


@task()
def attempt_stripe_event(receipt_id: int, after_attempts: int) -> str:
    """Apply a received Stripe event to its booking, unless another task did; its status."""
    from bookings.services import payments

    return payments.attempt_stripe_event(receipt_id=receipt_id, after_attempts=after_attempts)


@task()
def send_transition_emails(booking_id: int, audit_version: int) -> list[int]:
    """Write the emails one booking transition owes and enqueue a send task for each."""
    from bookings import notifications

    return notifications.send_transition_emails(booking_id=booking_id, audit_version=audit_version)


@task()
def send_booking_email(email_id: int, after_attempts: int) -> str:
    """Make a booking email's next send attempt unless another task made it; its status."""
    from bookings import notifications

    return notifications.send_email(email_id=email_id, after_attempts=after_attempts)


@task()
def offer_freed_seats(event_id: int) -> int:
    """Offer an event's freed seats to the people on its waitlist, in order; how many offers."""
    from bookings.services import waitlist

    return waitlist.offer_freed_seats(event_id=event_id)


@task()
def send_waitlist_email(email_id: int, after_attempts: int) -> str:
    """Make a waitlist email's next send attempt unless another task made it; its status."""
    from bookings import notifications

    return notifications.send_waitlist_email(email_id=email_id, after_attempts=after_attempts)
