"""Background work for the CRM, run by `python manage.py run_worker`.

Every attempt at a delivery is a task naming the attempt count it follows, enqueued inside
the transaction that makes it due (the booking change, the previous outcome, the claim's
lease), so the task exists exactly when that change does and two tasks for one delivery never
make the same attempt (`ahoum.attempts`).
"""

from django_tasks import task


@task()
def send_delivery(delivery_id: int, after_attempts: int) -> str:
    """Make a delivery's next attempt unless another task made it; returns its status."""
    from crm import notifier  # it imports this module for its POLICY

    return notifier.attempt_delivery(delivery_id=delivery_id, after_attempts=after_attempts)
