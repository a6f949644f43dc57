"""The scheduled job the README's deployment section names keeps the task table bounded."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from bookings.models import Booking, BookingAudit, BookingEmail
from conftest import client_for, run_tasks
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_pruning_removes_old_finished_tasks_and_keeps_the_bookings_record():
    event = EventFactory(price=0, starts_at=timezone.now() + timedelta(days=60))
    response = client_for(UserFactory()).post("/bookings/", {"event_id": event.pk}, format="json")
    assert response.status_code == 201
    run_tasks()
    finished = DBTaskResult.objects.exclude(status="READY")
    assert finished.exists()

    call_command("prune_db_task_results", "--min-age-days", "30", verbosity=0)
    assert finished.exists()  # too recent
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        call_command("prune_db_task_results", "--min-age-days", "30", verbosity=0)

    assert not finished.exists()
    assert Booking.objects.count() == 1
    assert BookingAudit.objects.count() == 1
    assert BookingEmail.objects.count() == 2
