from rest_framework import serializers

from bookings.models import Booking
from events.models import Event


class BookingCreateSerializer(serializers.Serializer):
    event_id = serializers.IntegerField(min_value=1)


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
            "event",
        ]
        read_only_fields = fields
