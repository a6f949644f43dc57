from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ahoum.serializers import StrictCharField
from bookings.models import Booking, WaitlistEntry
from bookings.serializers import AttendeeSerializer, attendee_representation
from events.serializers import EventSerializer


class RegistrationSerializer(serializers.ModelSerializer):
    """One booking: its booker (`user_id`, `name`, `email`), seats and attendees."""

    booking_id = serializers.IntegerField(source="id", read_only=True)
    user_id = serializers.IntegerField(read_only=True, help_text="The booker's id.")
    name = serializers.CharField(source="user.name", read_only=True, help_text="The booker's.")
    email = serializers.EmailField(source="user.email", read_only=True, help_text="The booker's.")
    booked_at = serializers.DateTimeField(source="created_at", read_only=True)
    seats = serializers.IntegerField(
        read_only=True, help_text="Seats the booking holds (its attendees not cancelled)."
    )
    attendees = serializers.SerializerMethodField(
        help_text="Every seat, in seat order, as in the booking's own answer."
    )

    class Meta:
        model = Booking
        fields = ["booking_id", "user_id", "name", "email", "status", "payment_status", "amount",
                  "currency", "booked_at", "seats", "attendees"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(AttendeeSerializer(many=True))
    def get_attendees(self, booking: Booking) -> list[dict]:
        # `.all()`: the page's attendees are prefetched (`selectors.registrations`).
        return [attendee_representation(seat, booking) for seat in booking.attendees.all()]


class RegistrationSummarySerializer(serializers.Serializer):
    event_id = serializers.IntegerField()
    title = serializers.CharField()
    capacity = serializers.IntegerField()
    seats_left = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    pending = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()
    seats_confirmed = serializers.IntegerField(help_text="Seats of confirmed bookings.")
    seats_pending = serializers.IntegerField(
        help_text="Seats of pending bookings (a lapsed hold counts until the scheduler marks it)."
    )
    seats_cancelled = serializers.IntegerField(
        help_text="Seats cancelled bookings held when cancelled (seats cancelled on their own "
        "are not counted: they left an active booking)."
    )
    seats_expired = serializers.IntegerField(help_text="Seats of expired holds.")
    refunded = serializers.IntegerField()
    revenue = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="Paid and confirmed."
    )
    currency = serializers.CharField()
    waitlist_waiting = serializers.IntegerField(help_text="Waitlist entries waiting for seats.")
    seats_waiting = serializers.IntegerField(
        help_text="Seats the waiting entries ask for (nobody else can book them)."
    )
    waitlist_offered = serializers.IntegerField(
        help_text="Offers of freed seats not yet accepted, declined or expired (a lapsed one "
        "counts until the scheduler marks it); their seats count as taken."
    )
    waitlist_open = serializers.BooleanField(
        help_text="Whether people may still join the waitlist (`PATCH /events/{id}`)."
    )


class RegistrationWaitlistEntrySerializer(serializers.ModelSerializer):
    """One open waitlist entry: who waits (`user_id`, `name`, `email`), for how many seats."""

    user_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    position = serializers.IntegerField(
        source="queue_position",
        read_only=True,
        allow_null=True,
        help_text="1 = the next person offered seats; null for an entry holding an offer.",
    )
    offer_expires_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Until when an offer holds its seats."
    )

    class Meta:
        model = WaitlistEntry
        fields = ["id", "user_id", "name", "email", "seats", "status", "position", "created_at",
                  "offer_expires_at"]  # fmt: skip
        read_only_fields = fields


class RegistrationWaitlistSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Open entries (waiting and offered).")
    results = RegistrationWaitlistEntrySerializer(
        many=True,
        help_text="The first 100 open entries in the order people joined (offers among them).",
    )


class RegistrationPageSerializer(serializers.Serializer):
    """A page of registrations with the event's summary and waitlist (for the schema)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RegistrationSerializer(many=True)
    summary = RegistrationSummarySerializer()
    waitlist = RegistrationWaitlistSerializer()


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
    seats_confirmed = serializers.IntegerField(read_only=True)
    seats_pending = serializers.IntegerField(read_only=True)
    waitlist_waiting = serializers.IntegerField(
        read_only=True, help_text="Waitlist entries waiting for seats."
    )

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "bookings_confirmed", "bookings_pending",
                  "seats_confirmed", "seats_pending", "waitlist_waiting"]  # fmt: skip

    def to_representation(self, event) -> dict:
        return {
            **super().to_representation(event),
            "bookings_confirmed": event.bookings_confirmed,
            "bookings_pending": event.bookings_pending,
            "seats_confirmed": event.seats_confirmed,
            "seats_pending": event.seats_pending,
            "waitlist_waiting": event.waitlist_waiting,
        }
