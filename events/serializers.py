from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from accounts.models import Role, User
from ahoum.serializers import (
    StrictCharField,
    StrictDecimalField,
    StrictTypesMixin,
    iso_datetime,
    money,
)
from events.models import Event, validate_currency, validate_price_precision, validate_schedule


class EventSerializer(StrictTypesMixin, serializers.ModelSerializer):
    """An event as the catalogue shows it; `seats_left` comes from `with_seats_left()`."""

    facilitator_id = serializers.PrimaryKeyRelatedField(
        source="facilitator",
        queryset=User.objects.filter(role=Role.FACILITATOR),
        required=False,
        help_text="Staff only: create the event for this facilitator. Defaults to the caller.",
    )
    facilitator_name = serializers.CharField(read_only=True)  # from for_catalogue()
    seats_left = serializers.IntegerField(read_only=True)
    rating = StrictDecimalField(
        max_digits=2,
        decimal_places=1,
        min_value=0,
        max_value=5,
        coerce_to_string=False,
        allow_null=True,
        required=False,
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "title",
            "description",
            "type",
            "rating",
            "starts_at",
            "ends_at",
            "timezone",
            "location",
            "capacity",
            "max_seats_per_booking",
            "waitlist_open",
            "seats_waiting",
            "price",
            "currency",
            "facilitator_id",
            "facilitator_name",
            "seats_left",
            "status",
            "cancellation_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "cancellation_reason",
            "seats_waiting",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"capacity": {"min_value": 1}, "price": {"min_value": 0}}

    currency = StrictCharField(
        max_length=3, required=False, help_text="ISO 4217 code; defaults to DEFAULT_CURRENCY."
    )

    def to_representation(self, event: Event) -> dict:
        # By hand: DRF's generic version was a third of the catalogue page's time
        # (bench/README.md). test_representation_matches_drf compares the two.
        return {
            "id": event.pk,
            "title": event.title,
            "description": event.description,
            "type": event.type,
            "rating": event.rating,  # a JSON number, as coerce_to_string=False writes it
            "starts_at": iso_datetime(event.starts_at),
            "ends_at": iso_datetime(event.ends_at),
            "timezone": event.timezone,
            "location": event.location,
            "capacity": event.capacity,
            "max_seats_per_booking": event.max_seats_per_booking,
            "waitlist_open": event.waitlist_open,
            "seats_waiting": event.seats_waiting,
            "price": money(event.price),
            "currency": event.currency,
            "facilitator_id": event.facilitator_id,
            "facilitator_name": event.facilitator_name,
            "seats_left": event.seats_left,
            "status": event.status,
            "cancellation_reason": event.cancellation_reason,
            "created_at": iso_datetime(event.created_at),
            "updated_at": iso_datetime(event.updated_at),
        }

    def validate_currency(self, value: str) -> str:
        value = value.upper()
        validate_currency(value)  # after upper-casing: `eur` is accepted as EUR
        return value

    def validate_starts_at(self, value):
        if value <= timezone.now():
            raise serializers.ValidationError("An event must start in the future.")
        return value

    def validate(self, attrs):
        # The model's own rules (Event.clean), here too so that a PATCH is checked against
        # the stored values and every problem is named in one answer.
        validate_schedule(
            starts_at=attrs.get("starts_at", getattr(self.instance, "starts_at", None)),
            ends_at=attrs.get("ends_at", getattr(self.instance, "ends_at", None)),
            entering=self.instance is None,
        )
        validate_price_precision(
            price=attrs.get("price", getattr(self.instance, "price", None)),
            currency=attrs.get("currency", getattr(self.instance, "currency", None))
            or settings.DEFAULT_CURRENCY,
        )
        return attrs
