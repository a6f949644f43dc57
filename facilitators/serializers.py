from rest_framework import serializers

from ahoum.serializers import StrictCharField
from bookings.models import Booking
from events.serializers import EventSerializer


class RegistrationSerializer(serializers.ModelSerializer):
    booking_id = serializers.IntegerField(source="id", read_only=True)
    user_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    booked_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Booking
        fields = ["booking_id", "user_id", "name", "email", "status", "payment_status", "amount",
                  "currency", "booked_at"]  # fmt: skip
        read_only_fields = fields


class RegistrationSummarySerializer(serializers.Serializer):
    event_id = serializers.IntegerField()
    title = serializers.CharField()
    capacity = serializers.IntegerField()
    seats_left = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    pending = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()
    refunded = serializers.IntegerField()
    revenue = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="Paid and confirmed."
    )
    currency = serializers.CharField()


class RegistrationPageSerializer(serializers.Serializer):
    """A page of registrations with the event's summary (for the schema)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RegistrationSerializer(many=True)
    summary = RegistrationSummarySerializer()


class CancelEventSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=1000, default="")


class CancellationSummarySerializer(serializers.Serializer):
    event_id = serializers.IntegerField()
    status = serializers.CharField()
    refunded = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    refunds_pending = serializers.IntegerField(
        help_text="Refunds owed that the worker is making (retried automatically)."
    )
    refund_failed = serializers.IntegerField(
        help_text="Refunds that gave up: staff see a payment issue and refund them by hand."
    )
    to_settle = serializers.IntegerField(
        help_text="Active bookings the worker has yet to cancel (it does so in batches)."
    )


class FacilitatorEventSerializer(EventSerializer):
    bookings_confirmed = serializers.IntegerField(read_only=True)
    bookings_pending = serializers.IntegerField(read_only=True)

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "bookings_confirmed", "bookings_pending"]

    def to_representation(self, event) -> dict:
        return {
            **super().to_representation(event),
            "bookings_confirmed": event.bookings_confirmed,
            "bookings_pending": event.bookings_pending,
        }
