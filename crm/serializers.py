from typing import Any

from rest_framework import serializers

from crm.models import MAX_ID
from events.models import MAX_SEATS_PER_BOOKING_LIMIT


class NotificationUserSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254)


def _id(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class NotificationSeatSerializer(serializers.Serializer):
    """The person in one seat of a group booking (`attendee`: the seat a change is about)."""

    id = _id()
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254, allow_blank=True)


class NotificationAttendeeSerializer(NotificationSeatSerializer):
    """One entry of `attendees`: a seat and its status (`cancelled`, or the booking's)."""

    status = serializers.CharField(max_length=20)


class NotificationSerializer(serializers.Serializer):
    """A booking notification: the original's keys are required, Ahoum's additions optional.

    Shape only. Whether it matches a booking is the service's business. Errors name nested
    fields with dots (`user.email`), as the payload's documentation does.
    """

    booking_id = _id()
    user = NotificationUserSerializer()
    event = _id(help_text="The event's id.")
    facilitator_id = _id()

    type = serializers.CharField(max_length=40, required=False, help_text="e.g. booking.paid")
    user_id = _id(required=False, help_text="Required when payment_status is paid.")
    status = serializers.CharField(max_length=20, required=False)
    payment_status = serializers.CharField(max_length=20, required=False)
    amount = serializers.DecimalField(
        max_digits=10, decimal_places=2, required=False, coerce_to_string=True
    )
    currency = serializers.CharField(max_length=3, required=False)
    event_title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    starts_at = serializers.DateTimeField(required=False)
    occurred_at = serializers.DateTimeField(required=False)
    sequence = serializers.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        required=False,
        help_text="Per-booking sequence number; a lower one than stored is history only.",
    )
    seats = serializers.IntegerField(
        min_value=1,
        max_value=MAX_SEATS_PER_BOOKING_LIMIT,
        required=False,
        help_text="Seats the booking holds after the change.",
    )
    attendees = NotificationAttendeeSerializer(
        many=True, required=False, max_length=MAX_SEATS_PER_BOOKING_LIMIT
    )
    attendee = NotificationSeatSerializer(
        required=False, help_text="With `booking.attendee_cancelled`: the seat cancelled."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("payment_status") == "paid" and "user_id" not in attrs:
            raise serializers.ValidationError(
                {"user_id": ['Required when payment_status is "paid".']}
            )
        return attrs

    @property
    def errors(self):
        return _flatten(super().errors)


class WaitlistNotificationSerializer(serializers.Serializer):
    """A waitlist notification (`type` "waitlist.*"): Ahoum's own, so only what identifies the
    entry and the person is required. Shape only, as `NotificationSerializer`."""

    type = serializers.CharField(max_length=40, help_text="e.g. waitlist.offered")
    waitlist_entry_id = _id()
    user = NotificationUserSerializer()
    event = _id(help_text="The event's id.")

    user_id = _id(required=False)
    facilitator_id = _id(required=False)
    event_title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    starts_at = serializers.DateTimeField(required=False)
    seats = serializers.IntegerField(
        min_value=1, max_value=MAX_SEATS_PER_BOOKING_LIMIT, required=False
    )
    status = serializers.CharField(max_length=20, required=False)
    offer_expires_at = serializers.DateTimeField(required=False, allow_null=True)
    booking_id = _id(required=False, allow_null=True, help_text="After an accepted offer.")
    occurred_at = serializers.DateTimeField(required=False)
    sequence = serializers.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        required=False,
        help_text="Per-entry sequence number; a lower one than stored is history only.",
    )
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)

    @property
    def errors(self):
        return _flatten(super().errors)


def _flatten(errors: Any, prefix: str = "") -> Any:
    """{"user": {"email": [...]}} -> {"user.email": [...]}; a nested object's own errors go
    under its name ({"user": {"non_field_errors": [...]}} -> {"user": [...]}); a list's items
    by their index (DRF keys them so: {"attendees": {1: {"email": [...]}}} ->
    {"attendees.1.email": [...]})."""
    if not isinstance(errors, dict):
        return errors
    flat: dict[str, Any] = {}
    for key, value in errors.items():
        if key == "non_field_errors" and prefix:
            name = prefix
        else:
            name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


class ReceiptSerializer(serializers.Serializer):
    detail = serializers.CharField()
    booking_id = serializers.IntegerField()
    duplicate = serializers.BooleanField(help_text="This webhook-id (or payload) came before.")
    stored = serializers.BooleanField(help_text="Recorded in the booking's history now.")
    stale = serializers.BooleanField(help_text="Older than the stored state: history only.")
    marked_paid = serializers.BooleanField(help_text="The booking was marked paid now.")
    mark_paid_refusal = serializers.ChoiceField(
        choices=["signature_required", "signing_key_not_configured"],
        allow_null=True,
        help_text='Why a notification saying "paid" marked nothing (stored for review): '
        "`signature_required` (not signed with the payment signing key: bearer token only, or "
        "signed with the bearer secret), `signing_key_not_configured` (signed, but "
        "CRM_INBOUND_SIGNING_SECRET is unset: nothing marks a booking paid). Null otherwise.",
    )
    forwarding_queued = serializers.BooleanField()


class WaitlistReceiptSerializer(serializers.Serializer):
    detail = serializers.CharField()
    waitlist_entry_id = serializers.IntegerField()
    duplicate = serializers.BooleanField(help_text="This webhook-id (or payload) came before.")
    stored = serializers.BooleanField(help_text="Recorded in the entry's history now.")
    stale = serializers.BooleanField(help_text="Older than the stored state: history only.")
    forwarding_queued = serializers.BooleanField()
