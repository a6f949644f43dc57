"""The receiver (`POST /webhook`, `POST /crm/webhook`): who may call it, what it stores, what
it forwards, and the bookings it marks paid."""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services as booking_services
from bookings.models import Booking, BookingAudit
from conftest import run_tasks
from crm.models import CRMBooking, CRMNotification, Delivery, DeliveryKind
from crm.tests.conftest import (
    FORWARD_TOKEN,
    SECRET,
    assert_signed,
    original_payload,
    standard_signature,
)
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

PATHS = ["/webhook", "/webhook/", "/crm/webhook", "/crm/webhook/"]


def full_payload(**overrides) -> dict:
    payload = original_payload(
        type="booking.created",
        user_id=12,
        status="pending",
        payment_status="unpaid",
        amount="49.50",
        currency="EUR",
        event_title="Sound Bath",
        starts_at="2030-06-01T18:00:00+00:00",
        occurred_at="2030-05-01T09:00:00+00:00",
        sequence=1,
    )
    payload.update(overrides)
    return payload


# --- who may call ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_original_payload_with_the_bearer_token_is_stored_on_every_path(sender, path):
    response = sender.post(original_payload(), path=path, signed=False)

    assert response.status_code == 200, response.json()
    assert response.json() == {
        "detail": "Stored.",
        "booking_id": 15,
        "duplicate": False,
        "stored": True,
        "stale": False,
        "marked_paid": False,
        "mark_paid_refusal": None,
        "forwarding_queued": False,
    }
    stored = CRMBooking.objects.get()
    assert (stored.booking_id, stored.user_name, stored.user_email) == (
        15,
        "Alice",
        "alice@example.com",
    )
    assert (stored.event_id, stored.facilitator_id) == (7, 3)
    assert stored.payload == original_payload()


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {SECRET}", f"Bearer {SECRET}x", "Token x"],
    ids=["missing", "empty", "no-token", "wrong", "basic", "longer", "other-scheme"],
)
@pytest.mark.parametrize("path", ["/webhook", "/crm/webhook/"])
def test_missing_or_wrong_bearer_token_is_403(sender, path, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = sender.post(path=path, token=None, signed=False, headers=headers)

    assert response.status_code == 403
    assert response.json() == {
        "code": "invalid_webhook_token",
        "detail": "Missing or wrong bearer token.",
    }
    assert not CRMBooking.objects.exists()


def test_bearer_scheme_is_case_insensitive(sender):
    response = sender.post(token=None, headers={"Authorization": f"bearer {SECRET}"})

    assert response.status_code == 200


def test_without_a_configured_secret_nobody_gets_in(settings, sender):
    settings.CRM_WEBHOOK_SECRET = ""

    assert sender.post(token="", signed=False).status_code == 403
    assert sender.post(token=None, headers={"Authorization": "Bearer "}).status_code == 403


def test_get_is_not_allowed(sender, client):
    response = client.get("/crm/webhook", HTTP_AUTHORIZATION=f"Bearer {SECRET}")

    assert response.status_code == 405


# --- signatures ----------------------------------------------------------------------------


def test_valid_signature_is_accepted_and_recorded(sender):
    response = sender.post(full_payload(), webhook_id="msg_abc")

    assert response.status_code == 200
    notification = CRMNotification.objects.get()
    assert (notification.webhook_id, notification.signed) == ("msg_abc", True)


def signed_but(tamper: str) -> dict:
    """Arguments for `Sender.post` whose signature fails in one way."""
    body = json.dumps(full_payload()).encode()
    now = int(time.time())
    good = {"body": body, "webhook_id": "msg_1", "timestamp": now}
    if tamper == "wrong-secret":
        return good | {"secret": "another-secret"}
    if tamper == "old":
        return good | {"timestamp": now - 330}
    if tamper == "future":
        return good | {"timestamp": now + 330}
    replaced = {
        "body": {"webhook-signature": standard_signature(SECRET, "msg_1", now, body + b" ")},
        "webhook-id": {"webhook-id": "msg_2"},
        "timestamp": {"webhook-timestamp": str(now - 1)},
        "garbage": {"webhook-signature": "v1,not-base64!!"},
        "v2-only": {"webhook-signature": "v2,AAAA"},
        "not-a-number": {"webhook-timestamp": "12.5"},
    }[tamper]
    return good | {"headers": replaced}


@pytest.mark.parametrize(
    "tamper",
    [
        "wrong-secret",
        "body",
        "webhook-id",
        "timestamp",
        "old",
        "future",
        "garbage",
        "v2-only",
        "not-a-number",
    ],
)
def test_signature_that_does_not_verify_is_403(sender, tamper):
    response = sender.post(**signed_but(tamper))

    assert response.status_code == 403
    assert response.json()["code"] == "signature_invalid"
    assert not CRMNotification.objects.exists()


def test_timestamp_just_inside_five_minutes_is_accepted(sender):
    assert sender.post(full_payload(), timestamp=int(time.time()) - 290).status_code == 200


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_partial_signature_headers_are_403(sender, client, missing):
    body = json.dumps(full_payload()).encode()
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {SECRET}",
        "HTTP_WEBHOOK_ID": "msg_1",
        "HTTP_WEBHOOK_TIMESTAMP": str(int(time.time())),
        "HTTP_WEBHOOK_SIGNATURE": "v1,AAAA",
    }
    del headers["HTTP_" + missing.upper().replace("-", "_")]

    response = client.generic(
        "POST", "/crm/webhook", body, content_type="application/json", **headers
    )

    assert response.status_code == 403
    assert response.json()["code"] == "signature_invalid"


def test_one_matching_signature_among_several_is_enough(sender):
    body = json.dumps(full_payload()).encode()
    now = int(time.time())
    good = standard_signature(SECRET, "msg_rot", now, body)
    old = standard_signature("retired-secret", "msg_rot", now, body)

    response = sender.post(
        body=body,
        webhook_id="msg_rot",
        timestamp=now,
        headers={"webhook-signature": f"{old} {good}"},
    )

    assert response.status_code == 200


def test_signatures_can_be_required(settings, sender):
    settings.CRM_WEBHOOK_REQUIRE_SIGNATURE = True

    unsigned = sender.post(signed=False)
    signed = sender.post()

    assert unsigned.status_code == 403
    assert unsigned.json()["code"] == "signature_invalid"
    assert signed.status_code == 200


def test_replayed_webhook_id_is_acknowledged_and_not_stored_twice(sender):
    first = sender.post(full_payload(), webhook_id="msg_once")
    replay = sender.post(full_payload(), webhook_id="msg_once")
    replay_unsigned = sender.post(
        full_payload(), webhook_id="msg_once", signed=False, headers={"webhook-id": "msg_once"}
    )

    assert first.json()["stored"] is True
    for response in (replay, replay_unsigned):
        assert response.status_code == 200
        assert response.json()["duplicate"] is True
        assert response.json()["stored"] is False
        assert response.json()["detail"] == "Already received; not stored again."
    assert CRMNotification.objects.count() == 1
    assert CRMBooking.objects.count() == 1


def test_replay_of_a_webhook_id_with_other_content_is_still_a_duplicate(sender):
    sender.post(full_payload(), webhook_id="msg_same")

    response = sender.post(full_payload(booking_id=16), webhook_id="msg_same")

    assert response.json()["duplicate"] is True
    assert list(CRMBooking.objects.values_list("booking_id", flat=True)) == [15]


# --- 400 and 413 -----------------------------------------------------------------------------


def without(payload: dict, dotted: str) -> dict:
    payload = json.loads(json.dumps(payload))
    *parents, last = dotted.split(".")
    target = payload
    for key in parents:
        target = target[key]
    del target[last]
    return payload


SEAT = {"id": 1, "name": "Bea", "email": "bea@example.com", "status": "confirmed"}


def test_a_group_bookings_seat_cancelled_is_stored_as_received(sender):
    payload = full_payload(
        type="booking.attendee_cancelled",
        status="confirmed",
        payment_status="free",
        amount="0.00",
        sequence=3,
        seats=2,
        attendees=[
            {"id": 40, "name": "Alice", "email": "alice@example.com", "status": "confirmed"},
            {"id": 41, "name": "Bea", "email": "bea@example.com", "status": "cancelled"},
            {"id": 42, "name": "Guest 3 of Alice", "email": "", "status": "confirmed"},
        ],
        attendee={"id": 41, "name": "Bea", "email": "bea@example.com"},
    )

    response = sender.post(payload)

    assert response.status_code == 200, response.json()
    assert response.json()["stored"] is True
    stored = CRMBooking.objects.get()
    assert (stored.type, stored.status, stored.sequence) == (
        "booking.attendee_cancelled",
        "confirmed",
        3,
    )
    assert stored.payload == payload
    assert stored.notifications.get().payload == payload


@pytest.mark.parametrize(
    "field", ["booking_id", "user", "user.name", "user.email", "event", "facilitator_id"]
)
def test_each_missing_required_field_is_a_400_naming_it(sender, field):
    response = sender.post(without(original_payload(), field))

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["fields"] == {field: ["This field is required."]}
    assert not CRMBooking.objects.exists()


def test_all_missing_fields_are_named_at_once(sender):
    response = sender.post({"user": {}})

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {
        "booking_id",
        "user.name",
        "user.email",
        "event",
        "facilitator_id",
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"booking_id": "fifteen"}, "booking_id"),
        ({"booking_id": 0}, "booking_id"),
        ({"booking_id": -3}, "booking_id"),
        ({"booking_id": 2**70}, "booking_id"),
        ({"booking_id": True}, "booking_id"),
        ({"booking_id": None}, "booking_id"),
        ({"user": "Alice"}, "user"),
        ({"user": {"name": "", "email": "alice@example.com"}}, "user.name"),
        ({"user": {"name": "A" * 201, "email": "alice@example.com"}}, "user.name"),
        ({"user": {"name": "Alice", "email": "not-an-email"}}, "user.email"),
        ({"user": {"name": "Alice", "email": ["a@example.com"]}}, "user.email"),
        ({"event": "7a"}, "event"),
        ({"event": 1.5}, "event"),
        ({"facilitator_id": {}}, "facilitator_id"),
        ({"sequence": -1}, "sequence"),
        ({"amount": "lots"}, "amount"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"type": "x" * 41}, "type"),
        ({"payment_status": "paid"}, "user_id"),  # paid needs user_id to match a booking
        ({"seats": 0}, "seats"),
        ({"seats": "two"}, "seats"),
        ({"attendees": "Bea"}, "attendees"),
        ({"attendees": [SEAT, {**SEAT, "id": 2, "email": "nope"}]}, "attendees.1.email"),
        ({"attendees": [{**SEAT, "status": None}]}, "attendees.0.status"),
        ({"attendees": [SEAT] * 101}, "attendees"),
        ({"attendee": {"name": "Bea", "email": ""}}, "attendee.id"),
    ],
)
def test_malformed_field_is_a_400_naming_it(sender, overrides, field):
    response = sender.post(original_payload(**overrides))

    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == [field]
    assert not CRMBooking.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"booking_id=15",
        b'{"booking_id": NaN}',
        b"\xff\xfe\x00",
        b"[" * 100_000,
        b'{"booking_id": 15, "x": "\\u0000"}',
        b'{"booking_id": 15, "x": "\\ud800"}',
    ],
    ids=["broken", "empty", "form", "nan", "binary", "deep", "nul", "lone-surrogate"],
)
def test_body_that_is_not_storable_json_is_400(settings, sender, body):
    settings.CRM_WEBHOOK_MAX_BYTES = 200_000

    response = sender.post(body=body)

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert not CRMBooking.objects.exists()


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"15", b"null"])
def test_json_that_is_not_an_object_is_400(sender, body):
    response = sender.post(body=body)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_non_json_content_type_is_still_parsed_as_json_or_refused_with_400(sender):
    stored = sender.post(original_payload(), content_type="text/plain")
    refused = sender.post(body=b"hello", content_type="text/plain")

    assert stored.status_code == 200
    assert refused.status_code == 400


def test_oversized_body_is_413(settings, sender):
    settings.CRM_WEBHOOK_MAX_BYTES = 1024
    payload = original_payload(notes="x" * 2000)

    response = sender.post(payload)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert not CRMBooking.objects.exists()
    assert sender.post(original_payload()).status_code == 200  # small ones still pass


def test_oversized_body_is_refused_before_checking_the_signature(settings, sender):
    settings.CRM_WEBHOOK_MAX_BYTES = 100

    response = sender.post(original_payload(), secret="wrong")

    assert response.status_code == 413


def test_unauthenticated_oversized_body_is_403_not_413(settings, sender):
    settings.CRM_WEBHOOK_MAX_BYTES = 100

    assert sender.post(original_payload(), token="wrong").status_code == 403


# --- storage and history --------------------------------------------------------------------


def test_one_crm_booking_per_booking_with_the_history_of_notifications(sender):
    sender.post(full_payload(sequence=1))
    sender.post(full_payload(sequence=2, type="booking.paid", payment_status="paid_elsewhere"))
    sender.post(full_payload(sequence=3, type="booking.cancelled", status="cancelled"))

    stored = CRMBooking.objects.get()
    assert (stored.type, stored.status, stored.sequence) == ("booking.cancelled", "cancelled", 3)
    assert stored.payment_status == "unpaid"
    assert stored.amount == Decimal("49.50") and stored.currency == "EUR"
    assert stored.payload["sequence"] == 3
    history = list(stored.notifications.order_by("received_at", "id"))
    assert [(n.sequence, n.type, n.applied) for n in history] == [
        (1, "booking.created", True),
        (2, "booking.paid", True),
        (3, "booking.cancelled", True),
    ]


def test_same_unsigned_payload_twice_is_stored_once(sender):
    first = sender.post(original_payload(), signed=False)
    second = sender.post(original_payload(), signed=False)

    assert (first.json()["stored"], second.json()["duplicate"]) == (True, True)
    assert CRMNotification.objects.count() == 1


def test_stale_sequence_does_not_overwrite_newer_state_but_is_kept_in_history(sender):
    sender.post(full_payload(sequence=3, type="booking.cancelled", status="cancelled"))

    response = sender.post(full_payload(sequence=2, type="booking.paid", status="confirmed"))

    assert response.status_code == 200
    assert response.json()["stale"] is True
    assert response.json()["detail"].startswith("Stored as history only")
    stored = CRMBooking.objects.get()
    assert (stored.type, stored.status, stored.sequence) == ("booking.cancelled", "cancelled", 3)
    assert stored.payload["sequence"] == 3
    stale = CRMNotification.objects.get(sequence=2)
    assert stale.applied is False and stale.payload["type"] == "booking.paid"


def test_later_original_payload_keeps_what_a_fuller_one_stored(sender):
    sender.post(full_payload())
    sender.post(original_payload(user={"name": "Alice B", "email": "alice@example.com"}))

    stored = CRMBooking.objects.get()
    assert stored.user_name == "Alice B"
    assert (stored.user_id, stored.sequence, stored.event_title) == (12, 1, "Sound Bath")


def test_unknown_extra_keys_are_kept_in_the_raw_payload(sender):
    sender.post(original_payload(coupon="SPRING", nested={"a": [1, 2]}))

    assert CRMBooking.objects.get().payload["nested"] == {"a": [1, 2]}


# --- forwarding ------------------------------------------------------------------------------


def test_forwarding_is_queued_and_retried_until_the_target_recovers(sender, forward_server):
    forward_server.expect_oneshot_request("/receive", method="POST").respond_with_data(
        "down", status=503
    )
    forward_server.expect_request("/receive", method="POST").respond_with_data("ok")

    response = sender.post(full_payload(), webhook_id="msg_fw")

    assert response.status_code == 200
    assert response.json()["forwarding_queued"] is True
    assert response.json()["detail"] == "Stored. Forwarding queued."
    assert forward_server.log == []  # not inline
    forward = Delivery.objects.get(kind=DeliveryKind.FORWARD)

    run_tasks()
    forward.refresh_from_db()
    assert (forward.status, forward.last_status_code) == (AttemptStatus.PENDING, 503)
    with time_machine.travel(forward.next_attempt_at + timedelta(seconds=1)):
        run_tasks()

    forward.refresh_from_db()
    assert (forward.status, forward.attempts) == (AttemptStatus.SUCCEEDED, 2)
    assert forward.notification == CRMNotification.objects.get()
    (_, failed), (request, ok) = forward_server.log
    assert (failed.status_code, ok.status_code) == (503, 200)
    assert json.loads(request.get_data()) == full_payload()
    assert_signed(request, FORWARD_TOKEN)  # Authorization: Bearer <FORWARD_FLASK_TOKEN>


def test_without_a_forward_url_nothing_is_forwarded(sender):
    response = sender.post(full_payload())

    assert response.json()["forwarding_queued"] is False
    assert not Delivery.objects.exists()


def test_a_duplicate_is_not_forwarded_again(sender, forward_server):
    sender.post(full_payload(), webhook_id="msg_dup")
    sender.post(full_payload(), webhook_id="msg_dup")

    assert Delivery.objects.filter(kind=DeliveryKind.FORWARD).count() == 1


# --- marking bookings paid ----------------------------------------------------------------


@pytest.fixture
def unpaid_booking():
    event = EventFactory(price=Decimal("30.00"))
    return booking_services.book_event(user=UserFactory(), event_id=event.pk)


def paid_notification(booking: Booking, **overrides) -> dict:
    matching = {
        "booking_id": booking.pk,
        "user_id": booking.user_id,
        "event": booking.event_id,
        "facilitator_id": booking.facilitator_id,
        "type": "booking.paid",
        "payment_status": "paid",
        "sequence": 2,
    }
    return full_payload(**(matching | overrides))


def test_paid_notification_matching_a_booking_marks_it_paid(sender, unpaid_booking):
    response = sender.post(paid_notification(unpaid_booking), webhook_id="msg_pay")

    assert response.status_code == 200
    assert response.json()["marked_paid"] is True
    assert "marked paid" in response.json()["detail"]
    unpaid_booking.refresh_from_db()
    assert (unpaid_booking.status, unpaid_booking.payment_status) == ("confirmed", "paid")
    audit = BookingAudit.objects.get(booking=unpaid_booking, change="booking.paid")
    assert audit.actor is None
    assert "CRM" in audit.reason and "msg_pay" in audit.reason
    assert CRMNotification.objects.get().marked_paid is True


def test_marking_paid_again_changes_nothing(sender, unpaid_booking):
    sender.post(paid_notification(unpaid_booking))
    again = sender.post(paid_notification(unpaid_booking, occurred_at=timezone.now().isoformat()))

    assert again.status_code == 200
    assert again.json()["marked_paid"] is False
    assert BookingAudit.objects.filter(booking=unpaid_booking).count() == 2


@pytest.mark.parametrize("mismatch", ["user_id", "event", "booking_id"])
def test_paid_notification_that_does_not_match_is_409_and_changes_nothing(
    sender, unpaid_booking, mismatch
):
    other = EventFactory()
    wrong = {"user_id": UserFactory().pk, "event": other.pk, "booking_id": unpaid_booking.pk + 1000}

    response = sender.post(paid_notification(unpaid_booking, **{mismatch: wrong[mismatch]}))

    assert response.status_code == 409
    assert response.json()["code"] == "booking_mismatch"
    unpaid_booking.refresh_from_db()
    assert unpaid_booking.payment_status == "unpaid"
    assert not CRMBooking.objects.exists()
    assert not CRMNotification.objects.exists()
    assert BookingAudit.objects.filter(booking=unpaid_booking).count() == 1


def test_unpaid_notification_for_an_unknown_booking_is_just_stored(sender):
    response = sender.post(full_payload(booking_id=424242))

    assert response.status_code == 200
    assert response.json()["marked_paid"] is False


# --- never a 500 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"booking_id": 15, "user": None, "event": 7, "facilitator_id": 3},
        {"booking_id": 15, "user": [], "event": 7, "facilitator_id": 3},
        original_payload(sequence=2**40),
        original_payload(amount="1e400"),
        original_payload(amount="123456789012.00"),
        original_payload(currency="EURO"),
        original_payload(status=["x"]),
        original_payload(user_id="abc"),
        original_payload(starts_at=12),
        {
            "booking_id": 1e300,
            "user": {"name": "A", "email": "a@b.co"},
            "event": 1,
            "facilitator_id": 1,
        },
    ],
)
def test_bad_input_is_a_400_never_a_500(sender, payload):
    response = sender.post(payload)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"


def test_overlong_webhook_id_is_400(sender):
    response = sender.post(original_payload(), webhook_id="m" * 256)

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["webhook-id"]


@pytest.mark.parametrize("path", ["/webhook", "/crm/webhook"])
def test_other_methods_are_405_even_without_a_token(api_client, path):
    response = api_client.generic("TRACE", path)

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
