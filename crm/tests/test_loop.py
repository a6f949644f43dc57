"""The whole loop as `make run` has it: bookings notify this server's own receiver, and
racing workers still deliver once. Real connections: a live server thread, worker threads."""

import re
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from werkzeug import Response

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services as booking_services
from conftest import client_for, run_tasks
from crm import notifier
from crm.models import CRMBooking, CRMNotification, Delivery
from events.tests.factories import EventFactory


@pytest.mark.django_db(transaction=True)
def test_bookings_reach_this_servers_own_receiver_and_the_loop_ends(
    settings, live_server, crm_secret
):
    settings.CRM_WEBHOOK_URL = f"{live_server.url}/crm/webhook"
    event = EventFactory(price=Decimal("20.00"), title="Gong Bath")
    person = UserFactory(email="loop@example.com")

    booking_id = client_for(person).post("/bookings/", {"event_id": event.pk}).json()["id"]
    run_tasks()
    # The CRM reports the payment: the receiver marks the booking paid, whose own
    # notification comes back to the receiver and changes nothing more.
    booking_services.mark_paid(booking_id=booking_id, reason="paid at the desk")
    run_tasks()

    crm_booking = CRMBooking.objects.get(booking_id=booking_id)
    assert (crm_booking.user_email, crm_booking.event_title) == ("loop@example.com", "Gong Bath")
    assert (crm_booking.type, crm_booking.payment_status, crm_booking.sequence) == (
        "booking.paid",
        "paid",
        2,
    )
    history = CRMNotification.objects.order_by("sequence")
    assert [(n.sequence, n.signed, n.marked_paid) for n in history] == [
        (1, True, False),
        (2, True, False),
    ]
    assert list(Delivery.objects.values_list("status", flat=True)) == [
        AttemptStatus.SUCCEEDED,
        AttemptStatus.SUCCEEDED,
    ]


@pytest.mark.django_db(transaction=True)
def test_a_seat_cancelled_reaches_the_receiver_with_the_seats_left(
    settings, live_server, crm_secret, admin_client
):
    settings.CRM_WEBHOOK_URL = f"{live_server.url}/crm/webhook"
    event = EventFactory(price=Decimal("0"), title="Gong Bath")
    booker = UserFactory(name="Alice", email="alice@example.com")
    booking = booking_services.book_event(
        user=booker,
        event_id=event.pk,
        seats=3,
        attendees=[{"name": "Bea", "email": "bea@example.com"}, {"name": "Cai"}],
    )
    bea = booking.attendees.get(name="Bea")
    booking_services.cancel_attendee(booking=booking, attendee_id=bea.pk, by=booker)
    run_tasks()

    crm_booking = CRMBooking.objects.get(booking_id=booking.pk)
    assert (crm_booking.type, crm_booking.status, crm_booking.sequence) == (
        "booking.attendee_cancelled",
        "confirmed",
        2,
    )
    assert crm_booking.payload["seats"] == 2
    assert crm_booking.payload["attendee"] == {
        "id": bea.pk,
        "name": "Bea",
        "email": "bea@example.com",
    }
    assert [(seat["name"], seat["status"]) for seat in crm_booking.payload["attendees"]] == [
        ("Alice", "confirmed"),
        ("Bea", "cancelled"),
        ("Cai", "confirmed"),
    ]
    history = CRMNotification.objects.order_by("sequence")
    assert [(n.type, n.payload["seats"], n.applied) for n in history] == [
        ("booking.created", 3, True),
        ("booking.attendee_cancelled", 2, True),
    ]
    assert set(Delivery.objects.values_list("status", flat=True)) == {AttemptStatus.SUCCEEDED}
    # Staff review shows the seats left and who sits in them.
    page = admin_client.get(f"/admin/crm/crmbooking/{crm_booking.pk}/change/").content.decode()
    seats_row = re.search(r'field-notified_seats">.*?<div class="readonly">(.*?)</div>', page, re.S)
    assert seats_row.group(1) == "2"
    assert "Bea &lt;bea@example.com&gt;: cancelled" in page
    assert "Cai &lt;no email&gt;: confirmed" in page


@pytest.mark.django_db(transaction=True)
def test_racing_workers_make_one_attempt_and_record_one_delivery(crm_server):
    def slow_ok(request):
        time.sleep(0.3)
        return Response("ok")

    crm_server.expect_request("/crm").respond_with_handler(slow_ok)
    booking_services.book_event(user=UserFactory(), event_id=EventFactory(price=0).pk)
    delivery = Delivery.objects.get()
    start = threading.Barrier(4)
    outcomes = []

    def work():
        try:
            start.wait(timeout=10)
            outcomes.append(notifier.attempt_delivery(delivery_id=delivery.pk, after_attempts=0))
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert len(crm_server.log) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 1)
    assert len(outcomes) == 4 and AttemptStatus.SUCCEEDED in outcomes
