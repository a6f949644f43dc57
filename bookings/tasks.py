"""Background work for bookings, run by `python manage.py db_worker`.

Tasks are enqueued inside the transaction that makes them necessary, so they exist exactly
when that change committed. Each one is safe to run twice.
"""

from django_tasks import task

# Holds lapsed by a sweep's run, marked per run; a full batch enqueues the next sweep at once.
SWEEP_BATCH = 500


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


@task()
def process_refund(refund_id: int, after_attempts: int) -> str:
    """Try (again) to refund a booking through Stripe, unless that attempt was already made."""
    from bookings import payments

    return payments.attempt_refund(refund_id=refund_id, after_attempts=after_attempts).status


@task()
def apply_stripe_event(event_id: str) -> None:
    """Apply a verified Stripe webhook event (stored by dj-stripe) to its booking."""
    from bookings import payments

    payments.apply_stripe_event(event_id=event_id)


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
