"""Staff review in the admin: CRM bookings (reviewed flag, notes, history) and deliveries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services as booking_services
from conftest import run_tasks
from crm.models import CRMBooking, Delivery
from crm.tests.conftest import original_payload
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def receive(sender, count: int, start: int = 1) -> None:
    for booking_id in range(start, start + count):
        payload = original_payload(booking_id=booking_id, type="booking.created", sequence=1)
        assert sender.post(payload).status_code == 200
        payload |= {"type": "booking.cancelled", "sequence": 2, "status": "cancelled"}
        assert sender.post(payload).status_code == 200


def queue_deliveries(count: int) -> None:
    for event in EventFactory.create_batch(count):
        booking_services.book_event(user=UserFactory(), event_id=event.pk)


@pytest.mark.parametrize(
    ("url", "make"),
    [("/admin/crm/crmbooking/", "receive"), ("/admin/crm/delivery/", "queue")],
)
def test_changelist_query_count_does_not_grow_with_rows(
    admin_client, sender, crm_server, url, make
):
    def add(count: int, start: int) -> None:
        if make == "receive":
            receive(sender, count, start)
        else:
            queue_deliveries(count)

    add(2, 1)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    add(20, 100)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200

    assert len(many) == len(few)


def test_crm_booking_search_and_filters(admin_client, sender):
    receive(sender, 3)
    sender.post(
        original_payload(booking_id=77, user={"name": "Findme", "email": "findme@example.com"})
    )
    CRMBooking.objects.filter(booking_id=1).update(reviewed=True)

    by_email = admin_client.get("/admin/crm/crmbooking/?q=findme").content.decode()
    by_id = admin_client.get("/admin/crm/crmbooking/?q=77").content.decode()
    reviewed = admin_client.get("/admin/crm/crmbooking/?reviewed__exact=1").content.decode()
    cancelled = admin_client.get("/admin/crm/crmbooking/?status=cancelled").content.decode()

    assert "findme@example.com" in by_email and "1 result" in by_email
    assert "1 result" in by_id
    assert "1 result" in reviewed
    assert "3 results" in cancelled


def test_staff_edit_reviewed_and_notes_only_and_see_history_read_only(admin_client, sender):
    receive(sender, 1)
    crm_booking = CRMBooking.objects.get()
    url = f"/admin/crm/crmbooking/{crm_booking.pk}/change/"

    page = admin_client.get(url).content.decode()
    posted = admin_client.post(
        url,
        {
            "reviewed": "on",
            "notes": "Called the attendee.",
            "user_name": "Changed",
            "notifications-TOTAL_FORMS": "0",
            "notifications-INITIAL_FORMS": "0",
        },
    )

    assert 'name="reviewed"' in page and 'name="notes"' in page
    assert 'name="user_name"' not in page and 'name="payload"' not in page
    assert "booking.created" in page and "booking.cancelled" in page  # the history
    assert "&quot;sequence&quot;: 2" in page  # raw payload, pretty-printed
    assert posted.status_code == 302, posted.content.decode()[:2000]
    crm_booking.refresh_from_db()
    assert (crm_booking.reviewed, crm_booking.notes) == (True, "Called the attendee.")
    assert crm_booking.user_name == "Alice"
    assert admin_client.get("/admin/crm/crmbooking/add/").status_code == 403


def test_delivery_list_filters_by_status_and_shows_read_only_detail(admin_client, crm_server):
    crm_server.expect_request("/crm").respond_with_data("no", status=400)
    queue_deliveries(2)
    run_tasks()
    queue_deliveries(1)

    failed = admin_client.get("/admin/crm/delivery/?status__exact=gave_up").content.decode()
    pending = admin_client.get("/admin/crm/delivery/?status__exact=pending").content.decode()
    delivery = Delivery.objects.filter(status=AttemptStatus.GAVE_UP).first()
    detail = admin_client.get(f"/admin/crm/delivery/{delivery.pk}/change/").content.decode()

    assert "2 results" in failed and "1 result" in pending
    assert delivery.webhook_id in detail and "HTTP 400: no" in detail
    assert "&quot;booking_id&quot;" in detail
    assert 'name="status"' not in detail


def test_redeliver_action_sends_failed_deliveries_again(admin_client, crm_server):
    crm_server.expect_oneshot_request("/crm").respond_with_data("no", status=400)
    crm_server.expect_request("/crm").respond_with_data("ok")
    queue_deliveries(1)
    run_tasks()
    delivery = Delivery.objects.get()
    assert delivery.status == AttemptStatus.GAVE_UP

    response = admin_client.post(
        "/admin/crm/delivery/",
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        follow=True,
    )
    run_tasks()

    assert "1 deliveries queued again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 2)


def test_staff_without_change_permission_cannot_redeliver(client, crm_server):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(viewer)
    queue_deliveries(1)

    page = client.get("/admin/crm/delivery/")

    assert page.status_code == 200
    assert "redeliver" not in page.content.decode()


def test_redeliver_action_leaves_delivered_deliveries_alone(admin_client, crm_server):
    crm_server.expect_request("/crm").respond_with_data("ok")
    queue_deliveries(1)
    run_tasks()
    delivery = Delivery.objects.get()
    assert delivery.status == AttemptStatus.SUCCEEDED

    response = admin_client.post(
        "/admin/crm/delivery/",
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        follow=True,
    )
    run_tasks()

    page = response.content.decode()
    assert "0 deliveries queued again. 1 already delivered (or under way) were left alone." in page
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (AttemptStatus.SUCCEEDED, 1)
    assert len(crm_server.log) == 1
