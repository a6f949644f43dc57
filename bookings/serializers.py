from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ahoum.serializers import (
    StrictCharField,
    StrictEmailField,
    StrictIntegerField,
    iso_datetime,
    money,
)
from bookings.models import Attendee, Booking, WaitlistEntry
from bookings.services import refunds
from events.models import MAX_SEATS_PER_BOOKING_LIMIT, Event


class AttendeeInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, help_text="The person in this seat.")
    email = StrictEmailField(
        max_length=254,
        required=False,
        allow_blank=True,
        help_text="Optional: they get their own confirmation and calendar invite.",
    )


class BookingCreateSerializer(serializers.Serializer):
    event_id = StrictIntegerField(min_value=1)
    seats = StrictIntegerField(
        min_value=1,
        max_value=MAX_SEATS_PER_BOOKING_LIMIT,
        default=1,
        help_text="Seats in this booking, up to the event's `max_seats_per_booking`.",
    )
    attendees = AttendeeInputSerializer(
        many=True,
        required=False,
        max_length=MAX_SEATS_PER_BOOKING_LIMIT,
        help_text="Who sits in the seats, at most `seats` of them; the booker takes the first "
        "seat unless listed (by email) or the list fills every seat. Unnamed seats are the "
        "booker's guests.",
    )

    def validate(self, data: dict) -> dict:
        attendees = data.get("attendees", [])
        if len(attendees) > data["seats"]:
            raise serializers.ValidationError(
                {"attendees": [f"At most {data['seats']} attendees for {data['seats']} seats."]}
            )
        emails = [person["email"].casefold() for person in attendees if person.get("email")]
        if len(emails) != len(set(emails)):
            raise serializers.ValidationError(
                {"attendees": ["Each attendee's email may appear only once."]}
            )
        return data


class AttendeeSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(
        help_text="The booking's status while the seat is held; `cancelled` once it is not."
    )

    @extend_schema_field(
        serializers.ChoiceField(choices=["pending", "confirmed", "cancelled", "expired"])
    )
    def get_status(self, attendee: Attendee) -> str:
        return attendee.status_in(attendee.booking)

    class Meta:
        model = Attendee
        fields = ["id", "position", "name", "email", "status"]
        read_only_fields = fields


def attendee_representation(attendee: Attendee, booking: Booking) -> dict:
    return {
        "id": attendee.pk,
        "position": attendee.position,
        "name": attendee.name,
        "email": attendee.email,
        "status": attendee.status_in(booking),
    }


class BookedEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "title", "type", "starts_at", "ends_at", "timezone", "location", "status"]
        read_only_fields = fields

    def to_representation(self, event: Event) -> dict:
        # By hand, as EventSerializer (bench/README.md); test_serializers compares with DRF.
        return {
            "id": event.pk,
            "title": event.title,
            "type": event.type,
            "starts_at": iso_datetime(event.starts_at),
            "ends_at": iso_datetime(event.ends_at),
            "timezone": event.timezone,
            "location": event.location,
            "status": event.status,
        }


class BookingSerializer(serializers.ModelSerializer):
    event_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True)
    facilitator_id = serializers.IntegerField(read_only=True)
    event = BookedEventSerializer(read_only=True)
    attendees = AttendeeSerializer(many=True, read_only=True)
    checkout_url = serializers.SerializerMethodField()
    checkout_session_id = serializers.SerializerMethodField()
    refund_status = serializers.SerializerMethodField(
        help_text="None; `pending` while the worker refunds; `succeeded`; or `failed` when it "
        "gave up and staff refund it by hand."
    )

    @extend_schema_field(
        serializers.ChoiceField(choices=["pending", "succeeded", "failed"], allow_null=True)
    )
    def get_refund_status(self, booking: Booking) -> str | None:
        return refunds.status_for(booking)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_checkout_url(self, booking: Booking) -> str | None:
        return booking.checkout_url if self.payable(booking) else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_checkout_session_id(self, booking: Booking) -> str | None:
        return booking.checkout_session_id if self.payable(booking) else None

    @staticmethod
    def payable(booking: Booking) -> bool:
        return bool(booking.checkout_session_id) and booking.status == "pending"

    def to_representation(self, booking: Booking) -> dict:
        # By hand: DRF's generic version was most of `GET /bookings/` and a sixth of
        # `POST /bookings/` (bench/README.md). test_serializers compares the two.
        payable = self.payable(booking)
        return {
            "id": booking.pk,
            "event_id": booking.event_id,
            "user_id": booking.user_id,
            "facilitator_id": booking.facilitator_id,
            "status": booking.status,
            "payment_status": booking.payment_status,
            "seats": booking.seats,
            "attendees": [
                attendee_representation(attendee, booking) for attendee in booking.attendees.all()
            ],
            "amount": money(booking.amount),
            "currency": booking.currency,
            "hold_expires_at": iso_datetime(booking.hold_expires_at),
            "created_at": iso_datetime(booking.created_at),
            "confirmed_at": iso_datetime(booking.confirmed_at),
            "paid_at": iso_datetime(booking.paid_at),
            "cancelled_at": iso_datetime(booking.cancelled_at),
            "expired_at": iso_datetime(booking.expired_at),
            "refunded_at": iso_datetime(booking.refunded_at),
            "checkout_url": booking.checkout_url if payable else None,
            "checkout_session_id": booking.checkout_session_id if payable else None,
            "refund_status": self.get_refund_status(booking),
            "event": BOOKED_EVENT.to_representation(booking.event),
        }

    class Meta:
        model = Booking
        fields = [
            "id",
            "event_id",
            "user_id",
            "facilitator_id",
            "status",
            "payment_status",
            "seats",
            "attendees",
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
            "refund_status",
            "event",
        ]
        read_only_fields = fields


BOOKED_EVENT = BookedEventSerializer()


class WaitlistJoinSerializer(serializers.Serializer):
    seats = StrictIntegerField(
        min_value=1,
        max_value=MAX_SEATS_PER_BOOKING_LIMIT,
        default=1,
        help_text="Seats wanted, up to the event's `max_seats_per_booking`.",
    )


class WaitlistAcceptSerializer(serializers.Serializer):
    attendees = AttendeeInputSerializer(
        many=True,
        required=False,
        max_length=MAX_SEATS_PER_BOOKING_LIMIT,
        help_text="Who sits in the offered seats, as for `POST /bookings/`.",
    )


class WaitlistEntrySerializer(serializers.ModelSerializer):
    event_id = serializers.IntegerField(read_only=True)
    booking_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The booking an accepted offer became."
    )
    position = serializers.IntegerField(
        source="queue_position",
        read_only=True,
        allow_null=True,
        help_text="1 = the next person offered seats; null once no longer waiting "
        "(read from `WaitlistEntry.objects.with_positions()`).",
    )
    offer_expires_at = serializers.SerializerMethodField(
        help_text="Until when an offer holds its seats (null before any offer)."
    )
    event = BookedEventSerializer(read_only=True)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_offer_expires_at(self, entry: WaitlistEntry) -> str | None:
        return iso_datetime(entry.offer_expires_at)

    class Meta:
        model = WaitlistEntry
        fields = ["id", "event_id", "seats", "status", "position", "created_at", "offered_at",
                  "offer_expires_at", "ended_at", "booking_id", "event"]  # fmt: skip
        read_only_fields = fields
