"""Waitlist changes to the CRM: one signed delivery per change, and the receiver storing them.

Entries are made through the real waitlist service on a sold-out event; a cancelled booking
frees the seat and the real worker (`run_tasks`) makes the offer. The CRM is a real HTTP
server on 127.0.0.1 (pytest-httpserver), or this server's own receiver on a live server.
"""

import json
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import time_machine

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services as booking_services
from bookings.models import Booking, PaymentStatus, WaitlistEntry, WaitlistStatus
from bookings.services import event_cancellation, waitlist
from conftest import run_tasks
from crm.models import CRMBooking, CRMNotification, CRMWaitlistEntry, Delivery, DeliveryKind
from crm.tests.conftest import FORWARD_TOKEN, SECRET, assert_signed, standard_signature
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


@pytest.fixture(autouse=True)
def _offers_last_twelve_hours(settings):
    settings.WAITLIST_OFFER_MINUTES = 12 * 60
    settings.WAITLIST_SKIP_LARGER = False


@pytest.fixture
def waiter():
    return UserFactory(name="Wanda Li", email="wanda@example.com")


def sold_out_event(*, price: str = "0", capacity: int = 1, title: str = "Gong Bath"):
    """An event one booking fills; that booking."""
    event = EventFactory(price=Decimal(price), capacity=capacity, title=title)
    return event, booking_services.book_event(user=UserFactory(), event_id=event.pk, seats=capacity)


def offer_freed_seat(booking: Booking, entry: WaitlistEntry) -> WaitlistEntry:
    booking_services.cancel_booking(booking=booking, by=booking.user)
    run_tasks()  # the freed seat is offered, and the deliveries sent
    entry.refresh_from_db()
    assert entry.status == WaitlistStatus.OFFERED
    return entry


def waitlist_requests(server) -> list:
    return [
        request
        for request, _ in server.log
        if json.loads(request.get_data())["type"].startswith("waitlist.")
    ]


def waitlist_payloads(server) -> list[dict]:
    return [json.loads(request.get_data()) for request in waitlist_requests(server)]


# --- deliveries out -----------------------------------------------------------------------------


def test_offered_and_expired_are_delivered_signed_with_the_entrys_version_as_sequence(
    crm_server, waiter
):
    crm_server.expect_request("/crm", method="POST").respond_with_data("ok")
    event, booking = sold_out_event(title="Sound Bath")
    entry = waitlist.join(user=waiter, event_id=event.pk)
    entry = offer_freed_seat(booking, entry)

    joined, offered = waitlist_payloads(crm_server)
    assert offered == {
        "type": "waitlist.offered",
        "waitlist_entry_id": entry.pk,
        "user": {"name": "Wanda Li", "email": "wanda@example.com"},
        "user_id": waiter.pk,
        "event": event.pk,
        "event_title": "Sound Bath",
        "starts_at": event.starts_at.isoformat(),
        "facilitator_id": event.facilitator_id,
        "seats": 1,
        "status": "offered",
        "offer_expires_at": entry.offer_expires_at.isoformat(),
        "booking_id": None,
        "occurred_at": entry.offered_at.isoformat(),
        "sequence": 2,
        "reason": "",
    }
    assert ISO_WITH_OFFSET.match(offered["offer_expires_at"])
    assert (joined["type"], joined["sequence"], joined["status"]) == (
        "waitlist.joined",
        1,
        "waiting",
    )
    assert joined["offer_expires_at"] is None
    for request in waitlist_requests(crm_server):
        assert_signed(request, SECRET)

    with time_machine.travel(entry.offer_expires_at + timedelta(seconds=1), tick=False):
        assert waitlist.expire_stale_offers() == 1
        run_tasks()

    *_, expired = waitlist_payloads(crm_server)
    entry.refresh_from_db()
    assert {key: expired[key] for key in ("type", "status", "reason", "sequence")} == {
        "type": "waitlist.expired",
        "status": "expired",
        "reason": "offer not taken in time",
        "sequence": 3,
    }
    assert expired["occurred_at"] == entry.ended_at.isoformat()
    assert expired["offer_expires_at"] == offered["offer_expires_at"]
    assert set(expired) == set(offered)
    deliveries = Delivery.objects.filter(waitlist_entry_id=entry.pk).order_by("sequence")
    assert [(d.event_type, d.sequence, d.booking_id, d.status) for d in deliveries] == [
        ("waitlist.joined", 1, None, AttemptStatus.SUCCEEDED),
        ("waitlist.offered", 2, None, AttemptStatus.SUCCEEDED),
        ("waitlist.expired", 3, None, AttemptStatus.SUCCEEDED),
    ]


def test_an_accepted_offer_names_its_booking_and_a_cancelled_event_ends_the_rest(
    crm_server, waiter
):
    crm_server.expect_request("/crm", method="POST").respond_with_data("ok")
    event, booking = sold_out_event()
    host = event.facilitator
    entry = waitlist.join(user=waiter, event_id=event.pk)
    second = waitlist.join(user=UserFactory(), event_id=event.pk)
    entry = offer_freed_seat(booking, entry)

    accepted_booking = waitlist.accept(entry=entry, by=waiter)
    event_cancellation.cancel_event(event=event, by=host, reason="The studio flooded.")
    run_tasks()

    by_entry = {}
    for payload in waitlist_payloads(crm_server):
        by_entry.setdefault(payload["waitlist_entry_id"], []).append(payload)
    accepted = by_entry[entry.pk][-1]
    assert (accepted["type"], accepted["status"], accepted["booking_id"], accepted["sequence"]) == (
        "waitlist.accepted",
        "accepted",
        accepted_booking.pk,
        3,
    )
    ended = by_entry[second.pk][-1]
    assert (ended["type"], ended["status"], ended["reason"], ended["offer_expires_at"]) == (
        "waitlist.expired",
        "expired",
        "event cancelled",
        None,
    )
    assert [p["type"] for p in by_entry[second.pk]] == ["waitlist.joined", "waitlist.expired"]


@pytest.mark.parametrize("change", ["declined", "left"])
def test_declining_and_leaving_are_delivered_too(crm_server, waiter, change):
    crm_server.expect_request("/crm", method="POST").respond_with_data("ok")
    event, booking = sold_out_event()
    entry = offer_freed_seat(booking, waitlist.join(user=waiter, event_id=event.pk))

    waitlist.leave(entry=entry, by=waiter, declined=change == "declined")
    run_tasks()

    last = waitlist_payloads(crm_server)[-1]
    assert (last["type"], last["status"], last["reason"], last["sequence"]) == (
        f"waitlist.{change}",
        "left",
        "declined" if change == "declined" else "left",
        3,
    )


def test_no_waitlist_delivery_while_notifications_are_off(settings, waiter):
    settings.CRM_WEBHOOK_URL = ""
    event, _ = sold_out_event()

    waitlist.join(user=waiter, event_id=event.pk)

    assert not Delivery.objects.exists()


# --- this server's receiver, end to end ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_receiver_stores_waitlist_notifications_once_and_staff_see_them(
    settings, live_server, crm_secret, admin_client
):
    settings.CRM_WEBHOOK_URL = f"{live_server.url}/crm/webhook"
    settings.WAITLIST_OFFER_MINUTES = 12 * 60
    waiter = UserFactory(name="Wanda Li", email="wanda@example.com")
    event, booking = sold_out_event(capacity=2, title="Gong Bath")
    entry = waitlist.join(user=waiter, event_id=event.pk, seats=2)
    entry = offer_freed_seat(booking, entry)

    stored = CRMWaitlistEntry.objects.get(waitlist_entry_id=entry.pk)
    assert (stored.type, stored.status, stored.seats, stored.sequence) == (
        "waitlist.offered",
        "offered",
        2,
        2,
    )
    assert (stored.user_id, stored.user_name, stored.user_email) == (
        waiter.pk,
        "Wanda Li",
        "wanda@example.com",
    )
    assert (stored.event_id, stored.event_title, stored.starts_at) == (
        event.pk,
        "Gong Bath",
        event.starts_at,
    )
    assert (stored.offer_expires_at, stored.booking_id) == (entry.offer_expires_at, None)
    assert stored.payload["type"] == "waitlist.offered"
    history = stored.notifications.order_by("sequence")
    assert [(n.type, n.sequence, n.status, n.applied, n.signed) for n in history] == [
        ("waitlist.joined", 1, "waiting", True, True),
        ("waitlist.offered", 2, "offered", True, True),
    ]
    assert set(Delivery.objects.values_list("status", flat=True)) == {AttemptStatus.SUCCEEDED}
    # The booking's own notifications are kept as before, on its CRMBooking.
    assert CRMBooking.objects.get(booking_id=booking.pk).type == "booking.cancelled"

    # The same message again (a sender's retry): acknowledged, not stored twice.
    delivery = Delivery.objects.get(waitlist_entry_id=entry.pk, event_type="waitlist.offered")
    body = json.dumps(delivery.payload).encode()
    timestamp = int(time.time())
    response = requests.post(
        f"{live_server.url}/crm/webhook",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {SECRET}",
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(SECRET, delivery.webhook_id, timestamp, body),
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {
        "detail": "Already received; not stored again.",
        "waitlist_entry_id": entry.pk,
        "duplicate": True,
        "stored": False,
        "stale": False,
        "forwarding_queued": False,
    }
    assert stored.notifications.count() == 2

    # Staff review: the entry in the list, and its history on its page.
    listing = admin_client.get("/admin/crm/crmwaitlistentry/").content.decode()
    assert "wanda@example.com" in listing and "waitlist.offered" in listing
    page = admin_client.get(f"/admin/crm/crmwaitlistentry/{stored.pk}/change/")
    assert page.status_code == 200
    assert "waitlist.joined" in page.content.decode()
    assert admin_client.get("/admin/crm/delivery/?q=" + str(entry.pk)).status_code == 200


# --- the receiver, edge cases -------------------------------------------------------------------


def waitlist_payload(**overrides) -> dict:
    payload = {
        "type": "waitlist.offered",
        "waitlist_entry_id": 41,
        "user": {"name": "Wanda Li", "email": "wanda@example.com"},
        "user_id": 12,
        "event": 7,
        "event_title": "Gong Bath",
        "starts_at": "2030-06-01T18:00:00+00:00",
        "facilitator_id": 3,
        "seats": 2,
        "status": "offered",
        "offer_expires_at": "2030-05-01T21:00:00+00:00",
        "booking_id": None,
        "occurred_at": "2030-05-01T09:00:00+00:00",
        "sequence": 2,
        "reason": "",
    }
    payload.update(overrides)
    return payload


def test_an_older_waitlist_notification_is_history_only(sender):
    newer = waitlist_payload(type="waitlist.accepted", status="accepted", booking_id=90, sequence=3)
    assert sender.post(newer).json()["stale"] is False

    response = sender.post(waitlist_payload())

    assert response.status_code == 200
    assert response.json()["detail"] == "Stored as history only: a newer notification is stored."
    stored = CRMWaitlistEntry.objects.get()
    assert (stored.type, stored.status, stored.booking_id, stored.sequence) == (
        "waitlist.accepted",
        "accepted",
        90,
        3,
    )
    assert [n.applied for n in CRMNotification.objects.order_by("sequence")] == [False, True]
    assert not CRMBooking.objects.exists()


def test_a_bearer_only_waitlist_notification_is_stored_without_its_sequence(sender):
    response = sender.post(waitlist_payload(sequence=2**31 - 1), signed=False)

    assert response.status_code == 200
    stored = CRMWaitlistEntry.objects.get()
    assert (stored.type, stored.sequence) == ("waitlist.offered", None)
    assert CRMNotification.objects.get().sequence == 2**31 - 1


def test_a_malformed_waitlist_notification_names_its_fields(sender):
    payload = waitlist_payload(seats=0)
    del payload["waitlist_entry_id"], payload["user"]["email"]

    response = sender.post(payload)

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"waitlist_entry_id", "user.email", "seats"}
    assert not CRMWaitlistEntry.objects.exists()


def test_a_waitlist_notification_marks_no_booking_paid(sender):
    event = EventFactory(price=Decimal("30.00"))
    booking = booking_services.book_event(user=UserFactory(), event_id=event.pk)

    response = sender.post(  # signed with the payment signing key, naming a real booking
        waitlist_payload(
            type="waitlist.accepted",
            booking_id=booking.pk,
            user_id=booking.user_id,
            event=event.pk,
            payment_status="paid",
        )
    )

    assert response.status_code == 200
    assert "marked_paid" not in response.json()
    booking.refresh_from_db()
    assert booking.payment_status == PaymentStatus.UNPAID


def test_a_received_waitlist_notification_is_forwarded(sender, forward_server):
    forward_server.expect_request("/receive", method="POST").respond_with_data("ok")

    response = sender.post(waitlist_payload(), webhook_id="msg_wl_forward")
    run_tasks()

    assert response.json()["detail"] == "Stored. Forwarding queued."
    forward = Delivery.objects.get(kind=DeliveryKind.FORWARD)
    assert (forward.status, forward.waitlist_entry_id, forward.booking_id) == (
        AttemptStatus.SUCCEEDED,
        41,
        None,
    )
    assert forward.notification.crm_waitlist_entry.waitlist_entry_id == 41
    ((request, _),) = forward_server.log
    assert json.loads(request.get_data()) == waitlist_payload()
    assert_signed(request, FORWARD_TOKEN)
