"""Notifications in: the CRM receiver, from the request's bytes to what it changes.

`read_notification` makes the transport checks, before any field is looked at, in this order:
the body's size (413), UTF-8 text (400), the Standard Webhooks signature when one is sent
(403, `crm.signing`), then JSON (400). The caller was let in by
`permissions.HasCRMWebhookToken`: a matching bearer token, or signature headers, which must
then verify here, with the receiver's bearer secret (`permissions.inbound_secret`) or the
payment signing key (`permissions.payment_signing_secret`). `signed` means a signature was sent
and verified, fresh, with either; `signed_for_payment` that it was the payment signing key's.

`receive_notification` stores a notification as its booking's `CRMBooking` state (unless a
newer one is stored) and in its history, once per webhook-id, queues its forward
(`notifier.queue_forward`), and marks the booking paid when the notification says so, matches
it, and is signed with the payment signing key (CRM_INBOUND_SIGNING_SECRET). The receiver's
bearer secret, as a token or as a signing key, only stores for review: it travels in every
bearer request's headers (and, while CRM_INBOUND_SECRET is unset, in every notification Ahoum
sends), so whoever sees one request can reuse it. The payment signing key is never a bearer
token, never sent, and settings refuse it equal to one; a Standard Webhooks signature with it
covers the body and expires in 5 minutes. Unset, nothing marks a booking paid.

A notification whose `type` starts with `waitlist.` (Ahoum's waitlist changes) is about a
waitlist entry, not a booking: `receive_waitlist_notification` stores it the same way, once
per webhook-id, as its entry's `CRMWaitlistEntry` state and history, and never marks anything
paid.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.request import Request

from ahoum import parsers
from ahoum.db import service_transaction
from bookings import services as booking_services
from bookings.models import Booking, PaymentStatus
from crm import notifier, signing
from crm.exceptions import BookingMismatch, PayloadTooLarge, SignatureInvalid
from crm.models import CRMBooking, CRMNotification, CRMWaitlistEntry
from crm.permissions import inbound_secret, payment_signing_secret

logger = logging.getLogger(__name__)

MAX_WEBHOOK_ID_LENGTH = 255

# CRMBooking fields set from a notification only when it carries them (the original's payload
# has none of them, and must not wipe what an earlier, fuller notification stored).
OPTIONAL_STATE_FIELDS = (
    "user_id",
    "event_title",
    "starts_at",
    "type",
    "status",
    "payment_status",
    "amount",
    "currency",
    "sequence",
)

# Why a notification saying "paid" did not mark its booking paid (the receipt's
# `mark_paid_refusal`); None when nothing was refused.
SIGNATURE_REQUIRED = "signature_required"
SIGNING_KEY_NOT_CONFIGURED = "signing_key_not_configured"
MARK_PAID_REFUSALS = {
    SIGNATURE_REQUIRED: (
        "Not marked paid: only a notification signed with the payment signing key "
        "(webhook-id, webhook-timestamp, webhook-signature) marks a booking paid; stored for "
        "review."
    ),
    SIGNING_KEY_NOT_CONFIGURED: (
        "Not marked paid: no payment signing key is configured, so no notification marks a "
        "booking paid; stored for review."
    ),
}


# --- The request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundNotification:
    payload: Any  # the parsed JSON, as received
    webhook_id: str
    signed: bool
    signed_for_payment: bool


def read_notification(request: Request) -> InboundNotification:
    """Check and parse a webhook request's body. Raises the error each check answers with."""
    limit = settings.CRM_WEBHOOK_MAX_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    body = request.body
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    try:
        # JSON is UTF-8 (RFC 8259), and a signature is verified over the body as text.
        body.decode()
    except UnicodeDecodeError as error:
        raise ParseError("The request body is not valid utf-8 text.") from error

    headers = request.headers
    webhook_id = headers.get("webhook-id", "").strip()
    if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise ValidationError({"webhook-id": [f"At most {MAX_WEBHOOK_ID_LENGTH} characters."]})
    signed = signing.is_signed(headers)
    signed_for_payment = False
    if signed:
        payment_key = payment_signing_secret()
        key = signing.verify(secrets=[payment_key, inbound_secret()], headers=headers, body=body)
        signed_for_payment = bool(payment_key) and key == payment_key
    elif settings.CRM_WEBHOOK_REQUIRE_SIGNATURE:
        raise SignatureInvalid("This receiver accepts signed webhooks only.")
    return InboundNotification(
        payload=_parse_json(body),
        webhook_id=webhook_id,
        signed=signed,
        signed_for_payment=signed_for_payment,
    )


def _parse_json(body: bytes) -> Any:
    payload = parsers.parse_json(body)  # 400 parse_error; nesting bounded, as every endpoint
    _check_storable(payload)
    return payload


def _check_storable(payload: Any) -> None:
    """Refuse text the database cannot store as JSON (NUL, lone surrogates), iteratively."""
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ParseError("The request body contains invalid Unicode.") from error
            if "\x00" in value:
                raise ParseError("The request body contains NUL characters.")


# --- Storing it and acting on it ---------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    booking_id: int
    duplicate: bool = False
    stored: bool = False
    stale: bool = False
    marked_paid: bool = False
    mark_paid_refusal: str | None = None
    forwarding_queued: bool = False

    @property
    def detail(self) -> str:
        if self.duplicate:
            return "Already received; not stored again."
        parts = [
            "Stored as history only: a newer notification is stored." if self.stale else "Stored."
        ]
        if self.marked_paid:
            parts.append("The booking was marked paid.")
        if self.mark_paid_refusal:
            parts.append(MARK_PAID_REFUSALS[self.mark_paid_refusal])
        if self.forwarding_queued:
            parts.append("Forwarding queued.")
        return " ".join(parts)


def receive_notification(
    *,
    data: dict[str, Any],
    payload: dict[str, Any],
    webhook_id: str = "",
    signed: bool = False,
    signed_for_payment: bool = False,
) -> Receipt:
    """Store a notification once (per webhook-id, or per payload without one) and act on it.

    `data` is the validated notification, `payload` the JSON as received (stored and
    forwarded as is), `signed` whether its signature verified (fresh) with any accepted key,
    `signed_for_payment` whether that key was the payment signing key. A lower sequence than
    the stored one is kept as history only. When one signed for payment says
    `payment_status: "paid"`, its booking_id, user_id and event must match one booking, which
    is then marked paid; otherwise `BookingMismatch` and nothing is stored or changed. Any
    other one saying so is stored for review, looks at no booking and changes none
    (`mark_paid_refusal`).
    """
    booking_id = data["booking_id"]
    dedupe_key = _dedupe_key(webhook_id, payload, signed_for_payment=signed_for_payment)
    repeat_keys = _repeat_keys(dedupe_key, webhook_id)
    if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
        return Receipt(booking_id=booking_id, duplicate=True)

    says_paid = data.get("payment_status") == PaymentStatus.PAID
    refusal = _mark_paid_refusal(signed=signed) if says_paid and not signed_for_payment else None
    # Before storing, in the bookings' own transaction (services never nest): if storing then
    # fails, the sender's retry arrives here again and marking paid twice changes nothing.
    marked_paid = says_paid and signed_for_payment and _mark_paid(data, webhook_id)

    forwarding = bool(settings.CRM_FORWARD_URL)
    applied = _store(
        CRMBooking,
        link="crm_booking",
        lookup={"booking_id": booking_id},
        state=_booking_state(data, payload, signed=signed),
        repeat_keys=repeat_keys,
        forwarding=forwarding,
        webhook_id=webhook_id,
        dedupe_key=dedupe_key,
        signed=signed,
        type=data.get("type", ""),
        sequence=data.get("sequence"),
        status=data.get("status", ""),
        payment_status=data.get("payment_status", ""),
        marked_paid=marked_paid,
        payload=payload,
    )
    if applied is None:
        return Receipt(booking_id=booking_id, duplicate=True)
    return Receipt(
        booking_id=booking_id,
        stored=True,
        stale=not applied,
        marked_paid=marked_paid,
        mark_paid_refusal=refusal,
        forwarding_queued=forwarding,
    )


@dataclass(frozen=True)
class WaitlistReceipt:
    waitlist_entry_id: int
    duplicate: bool = False
    stored: bool = False
    stale: bool = False
    forwarding_queued: bool = False

    @property
    def detail(self) -> str:
        if self.duplicate:
            return "Already received; not stored again."
        parts = [
            "Stored as history only: a newer notification is stored." if self.stale else "Stored."
        ]
        if self.forwarding_queued:
            parts.append("Forwarding queued.")
        return " ".join(parts)


# A notification of this type is about a waitlist entry (`WaitlistNotificationSerializer`).
WAITLIST_TYPE_PREFIX = "waitlist."


def is_waitlist_notification(payload: Any) -> bool:
    """Whether a received payload is a waitlist notification (its `type` says so)."""
    kind = payload.get("type") if isinstance(payload, dict) else None
    return isinstance(kind, str) and kind.startswith(WAITLIST_TYPE_PREFIX)


def receive_waitlist_notification(
    *,
    data: dict[str, Any],
    payload: dict[str, Any],
    webhook_id: str = "",
    signed: bool = False,
    signed_for_payment: bool = False,
) -> WaitlistReceipt:
    """Store a waitlist notification once, as `receive_notification` stores a booking's: its
    entry's `CRMWaitlistEntry` state (unless a newer sequence is stored) and its history, with
    its forward queued. It marks nothing paid and looks at no booking: a waitlist change
    reports no payment."""
    entry_id = data["waitlist_entry_id"]
    dedupe_key = _dedupe_key(webhook_id, payload, signed_for_payment=signed_for_payment)
    repeat_keys = _repeat_keys(dedupe_key, webhook_id)
    if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
        return WaitlistReceipt(waitlist_entry_id=entry_id, duplicate=True)
    forwarding = bool(settings.CRM_FORWARD_URL)
    applied = _store(
        CRMWaitlistEntry,
        link="crm_waitlist_entry",
        lookup={"waitlist_entry_id": entry_id},
        state=_waitlist_state(data, payload, signed=signed),
        repeat_keys=repeat_keys,
        forwarding=forwarding,
        webhook_id=webhook_id,
        dedupe_key=dedupe_key,
        signed=signed,
        type=data["type"],
        sequence=data.get("sequence"),
        status=data.get("status", ""),
        payload=payload,
    )
    if applied is None:
        return WaitlistReceipt(waitlist_entry_id=entry_id, duplicate=True)
    return WaitlistReceipt(
        waitlist_entry_id=entry_id, stored=True, stale=not applied, forwarding_queued=forwarding
    )


def _store(
    model: type[CRMBooking | CRMWaitlistEntry],
    *,
    link: str,
    lookup: dict[str, Any],
    state: dict[str, Any],
    repeat_keys: list[str],
    forwarding: bool,
    **notification: Any,
) -> bool | None:
    """Store a notification in its record's history, and as the record's state unless a newer
    sequence is stored; queue its forward. Whether it was applied; None for a repeat.

    `notification`: the `CRMNotification` fields; `link` names its record's field.
    """
    now = timezone.now()
    try:
        with service_transaction():
            record, created = model.objects.get_or_create(
                **lookup, defaults={**state, "created_at": now, "updated_at": now}
            )
            if not created:
                # The record's row lock orders its notifications: the sequence check and the
                # duplicate check below see every notification committed before this one.
                record = model.objects.select_for_update().get(pk=record.pk)
                if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
                    return None
            applied = created or _is_current(notification["sequence"], record.sequence)
            stored = CRMNotification.objects.create(
                **{link: record}, applied=applied, received_at=now, **notification
            )
            if applied and not created:
                for field, value in state.items():
                    setattr(record, field, value)
                record.updated_at = now
                record.save()
            if forwarding:
                notifier.queue_forward(notification=stored, payload=notification["payload"])
    except IntegrityError:
        # The same webhook-id for another record, committed meanwhile: still a duplicate.
        if CRMNotification.objects.filter(dedupe_key__in=repeat_keys).exists():
            return None
        raise
    return applied


def _mark_paid_refusal(*, signed: bool) -> str:
    if signed and not payment_signing_secret():
        return SIGNING_KEY_NOT_CONFIGURED
    return SIGNATURE_REQUIRED


def _mark_paid(data: dict[str, Any], webhook_id: str) -> bool:
    """Mark the matching booking paid; True if this changed it. Raises `BookingMismatch`."""
    booking = Booking.objects.filter(
        pk=data["booking_id"], user_id=data["user_id"], event_id=data["event"]
    ).first()
    if booking is None:
        raise BookingMismatch()
    if booking.payment_status != PaymentStatus.UNPAID:
        return False  # paid already (our own notification coming back), refunded or free
    reference = f" (webhook-id {webhook_id})" if webhook_id else ""
    booking = booking_services.mark_paid(
        booking_id=booking.pk, actor=None, reason=f"marked paid by a CRM notification{reference}"
    )
    logger.info("booking %s marked paid by a CRM notification", booking.pk)
    return True


def _booking_state(
    data: dict[str, Any], payload: dict[str, Any], *, signed: bool
) -> dict[str, Any]:
    """The CRMBooking fields a notification sets; optional ones only when it carries them.

    An unsigned notification's sequence stays in its history but never becomes the stored
    one: otherwise one bearer-token request with sequence 2^31 - 1 would make every later
    notification of the booking stale, freezing what staff see.
    """
    state = {
        "user_name": data["user"]["name"],
        "user_email": data["user"]["email"],
        "event_id": data["event"],
        "facilitator_id": data["facilitator_id"],
        "payload": payload,
    }
    state.update({field: data[field] for field in OPTIONAL_STATE_FIELDS if field in data})
    if not signed:
        state.pop("sequence", None)
    return state


# CRMWaitlistEntry fields set from a notification when it carries them.
WAITLIST_STATE_FIELDS = (
    "user_id",
    "event_title",
    "starts_at",
    "type",
    "status",
    "seats",
    "offer_expires_at",
    "booking_id",
    "reason",
    "sequence",
)


def _waitlist_state(
    data: dict[str, Any], payload: dict[str, Any], *, signed: bool
) -> dict[str, Any]:
    """The CRMWaitlistEntry fields a notification sets; as `_booking_state`, an unsigned one's
    sequence is never stored."""
    state = {
        "user_name": data["user"]["name"],
        "user_email": data["user"]["email"],
        "event_id": data["event"],
        "payload": payload,
    }
    state.update({field: data[field] for field in WAITLIST_STATE_FIELDS if field in data})
    if not signed:
        state.pop("sequence", None)
    return state


def _is_current(incoming: int | None, stored: int | None) -> bool:
    """Without sequence numbers the latest wins; with them, never a lower one than stored."""
    return incoming is None or stored is None or incoming >= stored


def _dedupe_key(webhook_id: str, payload: Any, *, signed_for_payment: bool) -> str:
    if webhook_id:
        # The webhook-id of a request not signed with the payment signing key (unsigned, or
        # signed with the bearer secret, which travels) is only the caller's word: kept apart,
        # so that it cannot take a payment's id and have it dropped as a repeat (unmarked paid).
        return f"id:{webhook_id}" if signed_for_payment else f"unsigned-id:{webhook_id}"
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _repeat_keys(dedupe_key: str, webhook_id: str) -> list[str]:
    """The stored keys that make a notification a repeat: its own, and for one not signed for
    payment with a webhook-id, a payment-signed message's with that id (the same message, sent
    again)."""
    if dedupe_key.startswith("unsigned-id:"):
        return [dedupe_key, f"id:{webhook_id}"]
    return [dedupe_key]
