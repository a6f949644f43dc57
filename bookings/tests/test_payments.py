"""Stripe Checkout, webhooks and refunds against a fake Stripe API on 127.0.0.1.

The real `stripe` library makes every call; webhooks go through dj-stripe's real view with a
real signature; the worker that applies them is the real `db_worker`.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services
from bookings.models import Booking, BookingAudit, PaymentIssue, Refund
from bookings.services import payments
from conftest import client_for, run_tasks, run_tasks_until
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return EventFactory(price=Decimal("49.50"), currency="EUR", capacity=1, title="Sound Bath")


def book(user, event):
    response = client_for(user).post("/bookings/", {"event_id": event.pk}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def paid_session_event(fake, booking_id: int, **session_overrides) -> dict:
    booking = Booking.objects.get(pk=booking_id)
    session = fake.pay_session(booking.checkout_session_id) | session_overrides
    return fake.event("checkout.session.completed", session)


# --- checkout -------------------------------------------------------------------------------


def test_paid_booking_gets_a_checkout_session_with_the_original_metadata(stripe_on, user, event):
    body = book(user, event)

    assert body["checkout_session_id"].startswith("cs_")
    assert body["checkout_url"].startswith(stripe_on.url)
    (call,) = stripe_on.calls("POST", "/v1/checkout/sessions")
    params = call.params
    assert params["mode"] == "payment"
    item = params["line_items"][0]
    assert item["quantity"] == "1"
    assert item["price_data"]["unit_amount"] == "4950"
    assert item["price_data"]["currency"] == "eur"
    assert item["price_data"]["product_data"]["name"] == "Sound Bath"
    assert params["customer_email"] == user.email
    assert params["client_reference_id"] == str(body["id"])
    assert params["metadata"] == {
        "user_id": str(user.pk),
        "event_id": str(event.pk),
        "facilitator_id": str(event.facilitator_id),
        "booking_id": str(body["id"]),
    }
    assert int(params["expires_at"]) >= (timezone.now() + timedelta(minutes=30)).timestamp()
    assert params["success_url"] and params["cancel_url"]
    assert (
        call.idempotency_key
        == f"ahoum-checkout-{body['id']}-" + call.idempotency_key.split("-")[3] + "-1"
    )
    # the hold lasts exactly as long as the session can be paid
    booking = Booking.objects.get(pk=body["id"])
    assert int(booking.hold_expires_at.timestamp()) == int(params["expires_at"])


def test_retried_checkout_creation_makes_one_session(stripe_on, user, event):
    """A second call for the same hold (say the first answer was lost) reuses the session."""
    with time_machine.travel(timezone.now(), tick=False):
        booking = services.book_event(user=user, event_id=event.pk)
        first = payments.open_checkout(booking=booking)
        second = payments.open_checkout(booking=booking)  # the same hold, as a retry sees it

    calls = stripe_on.calls("POST", "/v1/checkout/sessions")
    assert len(calls) == 2
    assert calls[0].idempotency_key == calls[1].idempotency_key
    assert first.checkout_session_id == second.checkout_session_id
    assert Booking.objects.get().checkout_session_id == first.checkout_session_id


@pytest.mark.parametrize(
    ("status", "expected"), [(500, 503), (503, 503), (400, 502)], ids=["500", "503", "400"]
)
def test_stripe_failure_at_checkout_answers_clearly_and_holds_no_seat(
    stripe_on, user, event, status, expected
):
    stripe_on.fail_next("POST", "/v1/checkout/sessions", status=status)

    response = client_for(user).post("/bookings/", {"event_id": event.pk}, format="json")

    assert response.status_code == expected
    assert response.json()["code"] in {"payment_provider_unavailable", "payment_provider_error"}
    assert Booking.objects.get().status == "expired"
    assert Booking.objects.get().audit.last().change == "booking.checkout_failed"
    assert book(UserFactory(), event)["status"] == "pending"  # the seat is free


def test_stripe_unreachable_at_checkout_is_503(stripe_on, user, event, monkeypatch):
    monkeypatch.setattr(payments.stripe, "api_base", "http://127.0.0.1:9")  # nothing listens

    response = client_for(user).post("/bookings/", {"event_id": event.pk}, format="json")

    assert response.status_code == 503
    assert Booking.objects.get().status == "expired"


def test_without_stripe_paid_bookings_stay_unpaid_without_checkout(settings, user, event):
    settings.STRIPE_SECRET_KEY = ""

    body = book(user, event)
    checkout = client_for(user).post(f"/bookings/{body['id']}/checkout")

    assert (body["status"], body["payment_status"]) == ("pending", "unpaid")
    assert body["checkout_url"] is None
    assert checkout.status_code == 503
    assert checkout.json()["code"] == "payments_not_configured"


def test_checkout_endpoint_returns_the_open_session_without_calling_stripe(stripe_on, user, event):
    body = book(user, event)

    again = client_for(user).post(f"/bookings/{body['id']}/checkout")

    assert again.status_code == 200
    assert again.json()["checkout_session_id"] == body["checkout_session_id"]
    assert len(stripe_on.calls("POST", "/v1/checkout/sessions")) == 1


def test_checkout_after_the_hold_lapsed_opens_a_new_session_if_a_seat_is_free(
    stripe_on, user, event
):
    body = book(user, event)

    with time_machine.travel(timezone.now() + timedelta(minutes=40)):
        renewed = client_for(user).post(f"/bookings/{body['id']}/checkout")

    assert renewed.status_code == 200
    assert renewed.json()["status"] == "pending"
    assert renewed.json()["checkout_session_id"] != body["checkout_session_id"]
    assert len(stripe_on.calls("POST", "/v1/checkout/sessions")) == 2


def test_checkout_after_the_hold_lapsed_and_the_seat_went_is_409(stripe_on, user, event):
    body = book(user, event)

    with time_machine.travel(timezone.now() + timedelta(minutes=40)):
        book(UserFactory(), event)
        response = client_for(user).post(f"/bookings/{body['id']}/checkout")

    assert response.status_code == 409
    assert response.json()["code"] == "sold_out"


def test_someone_elses_checkout_is_404(stripe_on, user, event):
    body = book(user, event)

    assert client_for(UserFactory()).post(f"/bookings/{body['id']}/checkout").status_code == 404


# --- webhooks -------------------------------------------------------------------------------


def test_completed_checkout_marks_the_booking_paid_and_confirmed(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event)
    stripe_event = paid_session_event(stripe_on, body["id"])

    response = stripe_webhooks.send(stripe_event)
    run_tasks()

    assert response.status_code == 200
    mine = client_for(user).get("/bookings/").json()["results"][0]
    assert (mine["status"], mine["payment_status"]) == ("confirmed", "paid")
    assert mine["facilitator_id"] == event.facilitator_id
    booking = Booking.objects.get()
    assert booking.payment_intent_id.startswith("pi_")
    assert BookingAudit.objects.filter(booking=booking, actor=None, to_status="confirmed").exists()


def test_replayed_webhook_changes_nothing_the_second_time(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    stripe_event = paid_session_event(stripe_on, body["id"])
    stripe_webhooks.send(stripe_event)
    run_tasks()
    version = Booking.objects.get().version

    replay = stripe_webhooks.send(stripe_event)
    run_tasks()

    assert replay.status_code == 200
    assert Booking.objects.get().version == version


def test_two_events_for_one_payment_apply_once(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    booking = Booking.objects.get(pk=body["id"])
    stripe_on.pay_session(booking.checkout_session_id, async_pending=True)
    pending = stripe_on.event(
        "checkout.session.completed", stripe_on.settle_async(booking.checkout_session_id, True)
    )
    succeeded = stripe_on.event(
        "checkout.session.async_payment_succeeded", pending["data"]["object"]
    )

    stripe_webhooks.send(pending)
    stripe_webhooks.send(succeeded)
    run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert BookingAudit.objects.filter(booking=booking).count() == 2


def test_async_payment_waits_then_succeeds(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    booking = Booking.objects.get(pk=body["id"])
    processing = stripe_on.pay_session(booking.checkout_session_id, async_pending=True)

    stripe_webhooks.send(stripe_on.event("checkout.session.completed", processing))
    run_tasks()
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("pending", "unpaid")

    settled = stripe_on.settle_async(booking.checkout_session_id, True)
    stripe_webhooks.send(stripe_on.event("checkout.session.async_payment_succeeded", settled))
    run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")


def test_async_payment_failure_releases_the_seat(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    booking = Booking.objects.get(pk=body["id"])
    stripe_on.pay_session(booking.checkout_session_id, async_pending=True)
    failed = stripe_on.settle_async(booking.checkout_session_id, False)

    stripe_webhooks.send(stripe_on.event("checkout.session.async_payment_failed", failed))
    run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("expired", "unpaid")
    assert book(UserFactory(), event)["status"] == "pending"


def test_expired_checkout_releases_the_seat(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    session = stripe_on.expire_session(body["checkout_session_id"])

    stripe_webhooks.send(stripe_on.event("checkout.session.expired", session))
    run_tasks()

    assert Booking.objects.get(pk=body["id"]).status == "expired"
    assert book(UserFactory(), event)["status"] == "pending"


def test_late_expired_event_never_downgrades_a_paid_booking(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event)
    paid = paid_session_event(stripe_on, body["id"])
    expired = stripe_on.event(
        "checkout.session.expired", paid["data"]["object"] | {"status": "expired"}
    )

    stripe_webhooks.send(paid)
    stripe_webhooks.send(expired)
    run_tasks()

    booking = Booking.objects.get()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")


def test_bad_signature_is_400_and_changes_nothing(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    stripe_event = paid_session_event(stripe_on, body["id"])

    forged = stripe_webhooks.send(stripe_event, secret="whsec_not_the_secret")
    stale = stripe_webhooks.send(stripe_event, timestamp=int(timezone.now().timestamp()) - 3600)
    run_tasks()

    assert forged.status_code == 400
    assert stale.status_code == 400
    assert Booking.objects.get().payment_status == "unpaid"


def test_payment_after_the_hold_lapsed_confirms_when_a_seat_is_free(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event)
    paid = paid_session_event(stripe_on, body["id"])  # paid in time; the webhook comes late
    with time_machine.travel(timezone.now() + timedelta(minutes=45)):
        services.expire_stale_holds()
        stripe_webhooks.send(paid)
        run_tasks()

    booking = Booking.objects.get()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert not stripe_on.calls("POST", "/v1/refunds")


def test_payment_in_time_processed_after_the_seat_was_taken_confirms_over_capacity(
    stripe_webhooks, stripe_on, user, event
):
    """The person paid before the hold ended; only the worker was late. They keep the seat:
    the event is one over capacity and staff see it (README, "Payments")."""
    body = book(user, event)
    paid = paid_session_event(stripe_on, body["id"])  # paid in time; the webhook comes late
    with time_machine.travel(timezone.now() + timedelta(minutes=45)):
        other = book(UserFactory(), event)
        stripe_webhooks.send(paid)
        run_tasks()

    late = Booking.objects.get(pk=body["id"])
    assert (late.status, late.payment_status) == ("confirmed", "paid")
    assert not stripe_on.calls("POST", "/v1/refunds")
    assert Booking.objects.get(pk=other["id"]).status == "pending"
    assert Booking.objects.filter(event=event).holding_seats().count() == 2  # capacity 1
    issue = PaymentIssue.objects.get()
    assert (issue.kind, issue.booking_id) == ("overbooked", late.pk)


def test_session_paid_as_the_booking_was_cancelled_is_refunded_automatically(
    stripe_webhooks, stripe_on, user, event
):
    """The person cancels their hold while paying in another tab: never money without a seat."""
    body = book(user, event)
    paid = paid_session_event(stripe_on, body["id"])  # paid; the webhook is on its way
    client_for(user).post(f"/bookings/{body['id']}/cancel")
    stripe_webhooks.send(paid)
    run_tasks()

    booking = Booking.objects.get(pk=body["id"])
    assert (booking.status, booking.payment_status) == ("cancelled", "refunded")
    (refund_call,) = stripe_on.calls("POST", "/v1/refunds")
    assert refund_call.params["payment_intent"] == booking.payment_intent_id
    assert refund_call.params["amount"] == "4950"
    # The cancellation tried to expire the session; it was already paid (400, left alone).
    assert stripe_on.calls("POST", f"/v1/checkout/sessions/{body['checkout_session_id']}/expire")


def test_amount_mismatch_is_flagged_and_not_confirmed(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)

    stripe_webhooks.send(paid_session_event(stripe_on, body["id"], amount_total=100))
    run_tasks()

    booking = Booking.objects.get()
    assert (booking.status, booking.payment_status) == ("pending", "unpaid")
    issue = PaymentIssue.objects.get()
    assert issue.kind == "amount_mismatch" and issue.booking == booking


def test_charge_refunded_after_our_own_refund_changes_nothing(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event)
    stripe_webhooks.send(paid_session_event(stripe_on, body["id"]))
    run_tasks()
    client_for(user).post(f"/bookings/{body['id']}/cancel")
    run_tasks()  # the worker makes the refund
    booking = Booking.objects.get()
    assert booking.payment_status == "refunded"
    version = booking.version

    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    stripe_webhooks.send(stripe_on.event("charge.refunded", charge))
    run_tasks()

    booking.refresh_from_db()
    assert booking.version == version
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 1


def test_refund_made_in_stripes_dashboard_marks_the_booking_refunded(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event)
    stripe_webhooks.send(paid_session_event(stripe_on, body["id"]))
    run_tasks()
    booking = Booking.objects.get()
    payments.stripe.Refund.create(
        payment_intent=booking.payment_intent_id, api_key=payments.settings.STRIPE_SECRET_KEY
    )

    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    stripe_webhooks.send(stripe_on.event("charge.refunded", charge))
    run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("cancelled", "refunded")


# --- refunds --------------------------------------------------------------------------------


@pytest.fixture
def paid_booking(stripe_webhooks, stripe_on, user, event):
    body = book(user, event)
    stripe_webhooks.send(paid_session_event(stripe_on, body["id"]))
    run_tasks()
    booking = Booking.objects.get(pk=body["id"])
    assert booking.payment_status == "paid"
    return booking


def test_owner_cancels_paid_booking_before_cutoff_and_the_worker_refunds_it(
    paid_booking, stripe_on, user
):
    response = client_for(user).post(f"/bookings/{paid_booking.pk}/cancel")

    # The request only records the cancellation and the refund owed: no Stripe call in it.
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["payment_status"], body["refund_status"]) == (
        "cancelled",
        "paid",
        "pending",
    )
    assert not stripe_on.calls("POST", "/v1/refunds")

    run_tasks()

    (call,) = stripe_on.calls("POST", "/v1/refunds")
    refund = Refund.objects.get()
    assert call.params["payment_intent"] == paid_booking.payment_intent_id
    assert call.params["amount"] == "4950"
    assert call.idempotency_key == f"ahoum-refund-{refund.pk}-1"
    assert refund.status == AttemptStatus.SUCCEEDED
    mine = client_for(user).get(f"/bookings/{paid_booking.pk}").json()
    assert (mine["payment_status"], mine["refund_status"]) == ("refunded", "succeeded")


def test_cancel_after_cutoff_is_409_with_the_policy(paid_booking, stripe_on, user, settings):
    settings.CANCELLATION_CUTOFF_HOURS = 24

    with time_machine.travel(paid_booking.event.starts_at - timedelta(hours=2)):
        response = client_for(user).post(f"/bookings/{paid_booking.pk}/cancel")

    assert response.status_code == 409
    assert response.json()["code"] == "cancellation_cutoff_passed"
    assert "24 hours" in response.json()["detail"]
    assert not stripe_on.calls("POST", "/v1/refunds")
    paid_booking.refresh_from_db()
    assert paid_booking.status == "confirmed"


def test_refund_failure_is_recorded_then_retried_by_the_worker(paid_booking, stripe_on, user):
    stripe_on.fail_next("POST", "/v1/refunds", status=500)

    response = client_for(user).post(f"/bookings/{paid_booking.pk}/cancel")
    run_tasks()

    assert response.status_code == 200
    refund = Refund.objects.get()
    assert (refund.status, refund.attempts, refund.failures) == (AttemptStatus.PENDING, 1, 1)
    assert "APIError" in refund.last_error

    with time_machine.travel(refund.next_attempt_at + timedelta(seconds=1)):
        run_tasks()

    refund.refresh_from_db()
    paid_booking.refresh_from_db()
    assert refund.status == AttemptStatus.SUCCEEDED and refund.attempts == 2
    assert paid_booking.payment_status == "refunded"
    calls = stripe_on.calls("POST", "/v1/refunds")
    assert len(calls) == 2  # one failed, one made the refund, each with its own key
    assert [call.idempotency_key for call in calls] == [
        f"ahoum-refund-{refund.pk}-1",
        f"ahoum-refund-{refund.pk}-2",
    ]
    run_tasks_until(timezone.now() + timedelta(days=2))  # the lease tasks find nothing to do
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 2


def test_refund_that_keeps_failing_is_handed_to_staff(paid_booking, stripe_on, user, settings):
    settings.REFUND_MAX_ATTEMPTS = 2
    stripe_on.fail_next("POST", "/v1/refunds", status=500, times=5)
    client_for(user).post(f"/bookings/{paid_booking.pk}/cancel")

    run_tasks_until(timezone.now() + timedelta(days=1))

    refund = Refund.objects.get()
    assert refund.status == AttemptStatus.GAVE_UP and refund.attempts == 2
    assert PaymentIssue.objects.get().kind == "refund_failing"
    assert Booking.objects.get().payment_status == "paid"
    mine = client_for(user).get(f"/bookings/{paid_booking.pk}").json()
    assert mine["refund_status"] == "failed"
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 2


def test_setup_stripe_webhook_registers_the_endpoint(settings, db, capsys):
    from django.core.management import call_command
    from djstripe.models import WebhookEndpoint

    settings.STRIPE_WEBHOOK_SECRET = "whsec_abc"
    settings.STRIPE_WEBHOOK_UUID = "0b6f6c3e-4f7e-4a53-9d1e-0a8c7f1f2b9e"

    call_command("setup_stripe_webhook", "--base-url", "https://api.ahoum.example")
    call_command("setup_stripe_webhook", "--base-url", "https://api.ahoum.example")

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == "whsec_abc"
    assert endpoint.url == (
        "https://api.ahoum.example/stripe/webhook/0b6f6c3e-4f7e-4a53-9d1e-0a8c7f1f2b9e"
    )
    assert "updated" in capsys.readouterr().out


def test_staff_retry_a_given_up_refund_from_the_admin(
    paid_booking, stripe_on, user, settings, admin_client
):
    settings.REFUND_MAX_ATTEMPTS = 1
    stripe_on.fail_next("POST", "/v1/refunds", status=500)
    client_for(user).post(f"/bookings/{paid_booking.pk}/cancel")
    run_tasks()
    refund = Refund.objects.get()
    assert refund.status == AttemptStatus.GAVE_UP

    page = admin_client.get("/admin/bookings/refund/?status=gave_up")
    response = admin_client.post(
        "/admin/bookings/refund/", {"action": "retry_now", "_selected_action": [refund.pk]}
    )

    assert (
        page.status_code == 200
        and f"booking #{paid_booking.pk}".lower() in page.content.decode().lower()
    )
    assert response.status_code == 302
    run_tasks()  # the worker makes it
    refund.refresh_from_db()
    assert refund.status == AttemptStatus.SUCCEEDED
    assert Booking.objects.get().payment_status == "refunded"


@pytest.mark.parametrize(
    ("path", "word"), [("/payments/success", "Thank you"), ("/payments/cancelled", "cancelled")]
)
def test_checkout_return_pages(api_client, path, word):
    response = api_client.get(f"{path}?session_id=cs_test_1")

    assert response.status_code == 200
    assert word in response.json()["detail"]
