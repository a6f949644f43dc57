from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ahoum.serializers import StrictIntegerField
from bookings.models import Booking
from events.models import Event


class BookingCreateSerializer(serializers.Serializer):
    event_id = StrictIntegerField(min_value=1)


class BookedEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "title", "type", "starts_at", "ends_at", "timezone", "location", "status"]
        read_only_fields = fields


class BookingSerializer(serializers.ModelSerializer):
    event_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True)
    facilitator_id = serializers.IntegerField(read_only=True)
    event = BookedEventSerializer(read_only=True)
    checkout_url = serializers.SerializerMethodField()
    checkout_session_id = serializers.SerializerMethodField()

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_checkout_url(self, booking: Booking) -> str | None:
        return booking.checkout_url if self._payable(booking) else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_checkout_session_id(self, booking: Booking) -> str | None:
        return booking.checkout_session_id if self._payable(booking) else None

    @staticmethod
    def _payable(booking: Booking) -> bool:
        return bool(booking.checkout_session_id) and booking.status == "pending"

    class Meta:
        model = Booking
        fields = [
            "id",
            "event_id",
            "user_id",
            "facilitator_id",
            "status",
            "payment_status",
            "amount",
            "currency",
            "hold_expires_at",
            "created_at",
            "confirmed_at",
            "paid_at",
            "cancelled_at",
            "expired_at",
            "refunded_at",
            "checkout_url",
            "checkout_session_id",
            "event",
        ]
        read_only_fields = fields
