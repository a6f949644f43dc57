from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ahoum.serializers import StrictIntegerField, iso_datetime, money
from bookings.models import Booking
from bookings.services import refunds
from events.models import Event


class BookingCreateSerializer(serializers.Serializer):
    event_id = StrictIntegerField(min_value=1)


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
