"""What the receiver trusts: a bearer token (or a signature with the bearer secret) stores a
notification for review, only a fresh Standard Webhooks signature with the payment signing key
(CRM_INBOUND_SIGNING_SECRET, never a bearer token) marks a booking paid, and nothing a caller
sends (headers, sequence, ids) can freeze the stored view or answer a 500."""

import json
import time
import uuid
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from bookings import services as booking_services
from bookings.models import Booking, BookingAudit
from conftest import run_tasks
from crm.models import MAX_ID, CRMBooking, CRMNotification
from crm.tests.conftest import (
    SECRET,
    SIGNING_SECRET,
    Sender,
    assert_signed,
    original_payload,
    standard_signature,
)
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

INBOUND_SECRET = "test-crm-inbound-secret-9876543210"


@pytest.fixture
def unpaid_booking() -> Booking:
    event = EventFactory(price=Decimal("30.00"))
    return booking_services.book_event(user=UserFactory(), event_id=event.pk)


def paid_claim(booking: Booking, **overrides) -> dict:
    """A notification saying `booking` was paid, matching it."""
    matching = {
        "booking_id": booking.pk,
        "user_id": booking.user_id,
        "event": booking.event_id,
        "facilitator_id": booking.facilitator_id,
        "type": "booking.paid",
        "status": "confirmed",
        "payment_status": "paid",
    }
    return original_payload(**(matching | overrides))


def assert_still_unpaid(booking: Booking) -> None:
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("pending", "unpaid")
    assert list(BookingAudit.objects.filter(booking=booking).values_list("change", flat=True)) == [
        "booking.created"
    ]


# --- marking paid needs a signature ------------------------------------------------------------


def test_bearer_only_paid_notification_is_stored_for_review_and_marks_nothing(
    sender, unpaid_booking
):
    response = sender.post(paid_claim(unpaid_booking), signed=False)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["stored"], body["marked_paid"]) == (True, False)
    assert body["mark_paid_refusal"] == "signature_required"
    assert "Not marked paid" in body["detail"] and "signature" in body["detail"]
    assert_still_unpaid(unpaid_booking)
    notification = CRMNotification.objects.get()
    assert (notification.signed, notification.marked_paid, notification.payment_status) == (
        False,
        False,
        "paid",
    )
    assert CRMBooking.objects.get().payment_status == "paid"  # what it claimed, for review


def test_signed_paid_notification_marks_paid_where_the_bearer_only_one_did_not(
    sender, unpaid_booking
):
    refused = sender.post(paid_claim(unpaid_booking), signed=False)
    signed = sender.post(paid_claim(unpaid_booking, sequence=2))

    assert refused.json()["marked_paid"] is False
    assert signed.status_code == 200
    assert signed.json()["marked_paid"] is True
    assert signed.json()["mark_paid_refusal"] is None
    unpaid_booking.refresh_from_db()
    assert (unpaid_booking.status, unpaid_booking.payment_status) == ("confirmed", "paid")
    history = CRMNotification.objects.order_by("id")
    assert [(n.signed, n.marked_paid) for n in history] == [(False, False), (True, True)]


def test_bearer_only_paid_notification_tells_nothing_about_bookings(sender, unpaid_booking):
    matching = sender.post(paid_claim(unpaid_booking), signed=False)
    unknown_id = unpaid_booking.pk + 1000
    unknown = sender.post(paid_claim(unpaid_booking, booking_id=unknown_id), signed=False)

    assert (matching.status_code, unknown.status_code) == (200, 200)
    ignored = {"booking_id"}
    assert {k: v for k, v in matching.json().items() if k not in ignored} == {
        k: v for k, v in unknown.json().items() if k not in ignored
    }
    assert CRMNotification.objects.count() == 2
    assert_still_unpaid(unpaid_booking)


def test_unsigned_request_cannot_take_the_webhook_id_of_a_signed_payment(sender, unpaid_booking):
    # Whoever has the bearer token, and can guess the id a signer will use, must not turn the
    # signed payment into a "duplicate".
    sender.post(paid_claim(unpaid_booking), signed=False, headers={"webhook-id": "msg_pay"})

    signed = sender.post(paid_claim(unpaid_booking, sequence=2), webhook_id="msg_pay")

    assert signed.json()["duplicate"] is False
    assert signed.json()["marked_paid"] is True
    unpaid_booking.refresh_from_db()
    assert unpaid_booking.payment_status == "paid"


def test_unsigned_repeat_of_a_signed_webhook_id_is_still_a_duplicate(sender, unpaid_booking):
    sender.post(paid_claim(unpaid_booking), webhook_id="msg_once")

    unsigned_id = {"webhook-id": "msg_once"}
    repeat = sender.post(paid_claim(unpaid_booking), signed=False, headers=unsigned_id)

    assert repeat.json()["duplicate"] is True
    assert CRMNotification.objects.count() == 1


@pytest.mark.parametrize("skew", [-301, 301, -3600, 10**9], ids=["old", "ahead", "hour", "far"])
def test_paid_notification_signed_outside_five_minutes_is_refused_and_writes_nothing(
    sender, unpaid_booking, skew
):
    response = sender.post(paid_claim(unpaid_booking), timestamp=int(time.time()) + skew)

    assert response.status_code == 403
    assert response.json()["code"] == "signature_invalid"
    assert "webhook-timestamp" in response.json()["detail"]
    assert_still_unpaid(unpaid_booking)
    assert not CRMNotification.objects.exists()
    assert not CRMBooking.objects.exists()


def test_signed_paid_notification_replayed_later_is_refused(sender, unpaid_booking, client):
    """A captured request (headers and body as sent) sent again after the tolerance."""
    body = json.dumps(paid_claim(unpaid_booking)).encode()
    signed_at = int(time.time()) - 6 * 60
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {SECRET}",
        "HTTP_WEBHOOK_ID": "msg_captured",
        "HTTP_WEBHOOK_TIMESTAMP": str(signed_at),
        "HTTP_WEBHOOK_SIGNATURE": standard_signature(SECRET, "msg_captured", signed_at, body),
    }

    response = client.generic("POST", "/webhook", body, content_type="application/json", **headers)

    assert response.status_code == 403
    assert_still_unpaid(unpaid_booking)
    assert not CRMNotification.objects.exists()


def hostile(**headers: str) -> dict:
    return {"headers": headers}


HOSTILE = {
    "timestamp-huge": hostile(**{"webhook-timestamp": "9" * 4000}),
    "timestamp-12-digits": hostile(**{"webhook-timestamp": "999999999999"}),
    "timestamp-negative": hostile(**{"webhook-timestamp": "-1"}),
    "timestamp-float": hostile(**{"webhook-timestamp": "1700000000.0"}),
    "timestamp-hex": hostile(**{"webhook-timestamp": "0x6553f100"}),
    "timestamp-arabic-digits": hostile(**{"webhook-timestamp": "\u0661\u0667" + "\u0660" * 8}),
    "timestamp-empty": hostile(**{"webhook-timestamp": ""}),
    "signature-empty-v1": hostile(**{"webhook-signature": "v1,"}),
    "signature-no-comma": hostile(**{"webhook-signature": "v1"}),
    "signature-blank": hostile(**{"webhook-signature": "   "}),
    "signature-huge": hostile(**{"webhook-signature": "v1," + "A" * 6000}),
    "signature-many": hostile(**{"webhook-signature": " ".join(["v1,AAAA"] * 500)}),
    "signature-not-base64": hostile(**{"webhook-signature": "v1,%%%%"}),
    "signature-latin1": hostile(**{"webhook-signature": "v1,\xe9\xe9"}),
    "id-missing": hostile(**{"webhook-id": ""}),
    "other-secret": {"secret": "forged-secret"},
}


@pytest.mark.parametrize("tamper", list(HOSTILE))
def test_hostile_signature_headers_on_a_payment_are_a_clear_403_and_write_nothing(
    sender, unpaid_booking, tamper
):
    response = sender.post(paid_claim(unpaid_booking), **HOSTILE[tamper])

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "signature_invalid"
    assert response.json()["detail"]
    assert_still_unpaid(unpaid_booking)
    assert not CRMNotification.objects.exists()


# --- a signer need not send its key ----------------------------------------------------------


def test_signature_without_a_bearer_token_is_enough_and_marks_paid(sender, unpaid_booking):
    response = sender.post(paid_claim(unpaid_booking), token=None)

    assert response.status_code == 200, response.json()
    assert response.json()["marked_paid"] is True
    assert CRMNotification.objects.get().signed is True


@pytest.mark.parametrize(
    "tamper", ["other-secret", "timestamp-huge", "signature-garbled", "timestamp-only"]
)
def test_forged_signature_without_a_bearer_token_is_403_and_writes_nothing(
    sender, unpaid_booking, tamper
):
    arguments = {
        "other-secret": {"secret": "forged-secret"},
        "timestamp-huge": hostile(**{"webhook-timestamp": "9" * 4000}),
        "signature-garbled": hostile(**{"webhook-signature": "v1,\x00\xff"}),
        "timestamp-only": {
            "signed": False,
            "headers": {"webhook-timestamp": str(int(time.time()))},
        },
    }[tamper]

    response = sender.post(paid_claim(unpaid_booking), token=None, **arguments)

    assert response.status_code == 403
    assert response.json()["code"] == "signature_invalid"
    assert_still_unpaid(unpaid_booking)
    assert not CRMNotification.objects.exists()


def test_wrong_bearer_token_is_403_even_with_a_valid_signature(sender, unpaid_booking):
    response = sender.post(paid_claim(unpaid_booking), token="wrong-token")

    assert response.status_code == 403
    assert response.json()["code"] == "invalid_webhook_token"
    assert_still_unpaid(unpaid_booking)


def test_without_a_configured_secret_a_signature_opens_nothing(settings, sender, unpaid_booking):
    settings.CRM_WEBHOOK_SECRET = ""
    settings.CRM_INBOUND_SECRET = ""
    settings.CRM_INBOUND_SIGNING_SECRET = ""

    response = sender.post(paid_claim(unpaid_booking), token=None, secret="")

    assert response.status_code == 403
    assert_still_unpaid(unpaid_booking)
    assert not CRMNotification.objects.exists()


# --- the receiver's own secret ---------------------------------------------------------------


@pytest.fixture
def separate_secrets(settings, crm_secret):
    settings.CRM_WEBHOOK_SECRET = SECRET  # what Ahoum sends out
    settings.CRM_INBOUND_SECRET = INBOUND_SECRET  # what its receiver accepts


def test_with_an_inbound_secret_the_outbound_one_opens_nothing(
    separate_secrets, sender, unpaid_booking
):
    bearer = sender.post(paid_claim(unpaid_booking), token=SECRET, signed=False)
    signed = sender.post(paid_claim(unpaid_booking), token=INBOUND_SECRET, secret=SECRET)

    assert bearer.status_code == 403
    assert bearer.json()["code"] == "invalid_webhook_token"
    assert signed.status_code == 403
    assert signed.json()["code"] == "signature_invalid"
    assert_still_unpaid(unpaid_booking)
    assert not CRMNotification.objects.exists()


def test_with_an_inbound_secret_it_stores_and_only_the_signing_key_marks_paid(
    separate_secrets, sender, unpaid_booking
):
    stored = sender.post(original_payload(), token=INBOUND_SECRET, signed=False)
    bearer_signed = sender.post(
        paid_claim(unpaid_booking), token=INBOUND_SECRET, secret=INBOUND_SECRET
    )
    assert_still_unpaid(unpaid_booking)
    paid = sender.post(paid_claim(unpaid_booking), token=INBOUND_SECRET, secret=SIGNING_SECRET)

    assert stored.status_code == 200 and stored.json()["stored"] is True
    assert bearer_signed.status_code == 200 and bearer_signed.json()["stored"] is True
    assert bearer_signed.json()["mark_paid_refusal"] == "signature_required"
    assert paid.status_code == 200 and paid.json()["marked_paid"] is True
    unpaid_booking.refresh_from_db()
    assert unpaid_booking.payment_status == "paid"


def test_with_an_inbound_secret_notifications_out_still_use_crm_webhook_secret(
    separate_secrets, crm_server, unpaid_booking
):
    crm_server.expect_request("/crm").respond_with_data("ok")
    booking_services.mark_paid(booking_id=unpaid_booking.pk, reason="paid at the desk")
    run_tasks()

    (request, _answer) = crm_server.log[-1]
    assert_signed(request, SECRET)


def test_without_an_inbound_secret_the_receiver_accepts_crm_webhook_secret(
    settings, sender, unpaid_booking
):
    settings.CRM_INBOUND_SECRET = ""

    stored = sender.post(paid_claim(unpaid_booking), token=SECRET, secret=SECRET)
    assert_still_unpaid(unpaid_booking)
    paid = sender.post(paid_claim(unpaid_booking), token=SECRET, secret=SIGNING_SECRET)

    assert stored.status_code == 200 and stored.json()["stored"] is True
    assert stored.json()["mark_paid_refusal"] == "signature_required"
    assert CRMNotification.objects.get(marked_paid=False).signed is True
    assert paid.json()["marked_paid"] is True


# --- the payment signing key -----------------------------------------------------------------


def paid_claim_signed_without_bearer(client, booking: Booking, key: str):
    """A matching paid claim signed with `key`, with no Authorization header."""
    body = json.dumps(paid_claim(booking)).encode()
    webhook_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    return client.generic(
        "POST",
        "/crm/webhook",
        body,
        content_type="application/json",
        HTTP_WEBHOOK_ID=webhook_id,
        HTTP_WEBHOOK_TIMESTAMP=str(timestamp),
        HTTP_WEBHOOK_SIGNATURE=standard_signature(key, webhook_id, timestamp, body),
    )


def test_the_token_every_outbound_notification_carries_cannot_sign_a_payment(
    client, crm_server, unpaid_booking
):
    """The default configuration (CRM_INBOUND_SECRET unset, as .env.example ships it)."""
    crm_server.expect_request("/crm", method="POST").respond_with_data("ok")
    run_tasks()  # the booking.created notification goes out
    (request, _response) = crm_server.log[0]
    seen_on_the_wire = request.headers["Authorization"].removeprefix("Bearer ")

    response = paid_claim_signed_without_bearer(client, unpaid_booking, seen_on_the_wire)

    unpaid_booking.refresh_from_db()
    assert unpaid_booking.payment_status == "unpaid", response.json()


def test_a_bearer_only_inbound_request_does_not_hand_out_the_payment_signing_key(
    settings, client, crm_secret, unpaid_booking
):
    """With CRM_INBOUND_SECRET set: the original's bearer-only sender still sends it."""
    settings.CRM_INBOUND_SECRET = INBOUND_SECRET
    ordinary = Sender(client).post(original_payload(), token=INBOUND_SECRET, signed=False)
    assert ordinary.status_code == 200
    seen_on_the_wire = INBOUND_SECRET  # what that request's header carried

    response = paid_claim_signed_without_bearer(client, unpaid_booking, seen_on_the_wire)

    unpaid_booking.refresh_from_db()
    assert unpaid_booking.payment_status == "unpaid", response.json()


@pytest.mark.parametrize("signed", [True, False])
def test_without_a_signing_key_no_notification_marks_paid_and_the_answer_says_why(
    settings, sender, unpaid_booking, signed
):
    settings.CRM_INBOUND_SIGNING_SECRET = ""

    response = sender.post(paid_claim(unpaid_booking), secret=SECRET, signed=signed)

    assert response.status_code == 200 and response.json()["stored"] is True
    assert response.json()["marked_paid"] is False
    expected = "signing_key_not_configured" if signed else "signature_required"
    assert response.json()["mark_paid_refusal"] == expected
    assert "stored for review" in response.json()["detail"]
    assert_still_unpaid(unpaid_booking)


def test_a_receiver_with_only_the_signing_key_takes_signed_payments(
    settings, sender, unpaid_booking
):
    settings.CRM_WEBHOOK_SECRET = ""
    settings.CRM_INBOUND_SECRET = ""

    bearer = sender.post(paid_claim(unpaid_booking), token=SIGNING_SECRET, signed=False)
    paid = sender.post(paid_claim(unpaid_booking), token=None)

    assert bearer.status_code == 403  # never a bearer token
    assert paid.status_code == 200 and paid.json()["marked_paid"] is True


@pytest.mark.parametrize("bearer_secret", ["CRM_WEBHOOK_SECRET", "CRM_INBOUND_SECRET"])
def test_a_signing_key_equal_to_a_bearer_secret_marks_nothing_paid(
    settings, sender, unpaid_booking, bearer_secret
):
    """Settings refuse to start so; overridden settings are still not trusted."""
    setattr(settings, bearer_secret, SIGNING_SECRET)

    response = sender.post(paid_claim(unpaid_booking), token=SIGNING_SECRET)

    assert response.status_code == 200
    assert response.json()["mark_paid_refusal"] == "signing_key_not_configured"
    assert_still_unpaid(unpaid_booking)


@pytest.mark.parametrize("bearer_secret", ["CRM_WEBHOOK_SECRET", "CRM_INBOUND_SECRET"])
def test_settings_refuse_a_signing_key_equal_to_a_bearer_secret(bearer_secret):
    from ahoum.tests.test_project import PRODUCTION_ENV, manage

    same = {bearer_secret: "s" * 40, "CRM_INBOUND_SIGNING_SECRET": "s" * 40}
    result = manage("check", env=PRODUCTION_ENV | same)

    assert result.returncode != 0
    assert "CRM_INBOUND_SIGNING_SECRET must differ" in result.stderr


def test_check_deploy_warns_when_the_receiver_accepts_the_secret_it_sends_out():
    from ahoum.tests.test_project import PRODUCTION_ENV, manage

    outbound = {"CRM_WEBHOOK_URL": "https://crm.example/hook", "CRM_WEBHOOK_SECRET": "o" * 40}
    shared = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV | outbound)
    separate = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=PRODUCTION_ENV | outbound | {"CRM_INBOUND_SECRET": "i" * 40},
    )

    assert shared.returncode != 0
    assert "crm.W001" in shared.stderr and "CRM_INBOUND_SECRET" in shared.stderr
    assert separate.returncode == 0, separate.stdout + separate.stderr


def test_production_refuses_the_example_value_as_inbound_secret():
    from ahoum.tests.test_project import PRODUCTION_ENV, manage

    result = manage("check", env=PRODUCTION_ENV | {"CRM_INBOUND_SECRET": "crmsecrettoken"})

    assert result.returncode != 0
    assert "CRM_INBOUND_SECRET is the example value" in result.stderr


# --- sequence and ids ------------------------------------------------------------------------


def test_sequence_beyond_2_31_minus_1_is_a_400_naming_it(sender):
    largest = sender.post(original_payload(sequence=2**31 - 1))
    beyond = sender.post(original_payload(booking_id=16, sequence=2**31))

    assert largest.status_code == 200
    assert beyond.status_code == 400
    assert list(beyond.json()["fields"]) == ["sequence"]
    assert list(CRMBooking.objects.values_list("booking_id", flat=True)) == [15]


def test_unsigned_sequence_cannot_freeze_the_stored_view(sender):
    sender.post(original_payload(type="booking.created", sequence=1))
    frozen = sender.post(original_payload(type="junk", sequence=2**31 - 1), signed=False)

    later = sender.post(original_payload(type="booking.cancelled", sequence=2))

    assert frozen.json()["stored"] is True  # kept for review
    assert later.json()["stale"] is False
    stored = CRMBooking.objects.get()
    assert (stored.type, stored.sequence) == ("booking.cancelled", 2)
    assert CRMNotification.objects.get(type="junk").sequence == 2**31 - 1


def test_unsigned_notification_older_than_the_stored_sequence_is_still_history_only(sender):
    sender.post(original_payload(type="booking.cancelled", sequence=3))

    response = sender.post(original_payload(type="booking.created", sequence=1), signed=False)

    assert response.json()["stale"] is True
    assert CRMBooking.objects.get().type == "booking.cancelled"


@pytest.mark.parametrize("field", ["booking_id", "user_id", "event", "facilitator_id"])
def test_id_beyond_the_largest_storable_is_a_400_naming_it(sender, unpaid_booking, field):
    response = sender.post(paid_claim(unpaid_booking, **{field: MAX_ID + 1}))

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert_still_unpaid(unpaid_booking)


@pytest.mark.parametrize("field", ["booking_id", "user_id", "event"])
def test_largest_storable_id_in_a_signed_payment_is_a_clean_mismatch(sender, unpaid_booking, field):
    response = sender.post(paid_claim(unpaid_booking, **{field: MAX_ID}))

    assert response.status_code == 409
    assert response.json()["code"] == "booking_mismatch"
    assert_still_unpaid(unpaid_booking)
