"""Background work for the CRM, run by `python manage.py db_worker`.

A new delivery's first attempt is made by a dispatch, woken after the delivery committed
(`services.wake_dispatcher`). Retries, leases and redeliveries are a task per attempt,
enqueued inside the transaction that reschedules the delivery, so the task exists exactly
when that change does. Each names the attempt count it follows: two tasks for the same
delivery never make the same attempt.
"""

from django_tasks import task


@task()
def send_delivery(delivery_id: int, after_attempts: int) -> str:
    """Make a delivery's next attempt unless another task made it; returns its status."""
    from crm import services

    return services.attempt_delivery(delivery_id=delivery_id, after_attempts=after_attempts)


@task()
def dispatch_deliveries() -> int:
    """Make the first attempt of the deliveries waiting for one; how many it took."""
    from crm import services

    return services.dispatch_first_attempts()
