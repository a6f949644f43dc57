"""Background work for the CRM, run by `python manage.py db_worker`.

Enqueued inside the transaction that creates or reschedules a delivery, so a task exists
exactly when that row does. Each task names the attempt count it follows: two tasks for the
same delivery never make the same attempt.
"""

from django_tasks import task


@task()
def send_delivery(delivery_id: int, after_attempts: int) -> str:
    """Make a delivery's next attempt unless another task made it; returns its status."""
    from crm import services

    return services.attempt_delivery(delivery_id=delivery_id, after_attempts=after_attempts)
