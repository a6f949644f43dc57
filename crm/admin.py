"""Staff review: what the CRM received (bookings and waitlist entries, with notes and a
reviewed flag), and what was sent."""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from crm import notifier
from crm.models import CRMBooking, CRMNotification, CRMWaitlistEntry, Delivery


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class CRMNotificationInline(admin.TabularInline):
    """Every notification received for the booking, newest first; read-only."""

    model = CRMNotification
    fields = [
        "received_at",
        "type",
        "sequence",
        "status",
        "payment_status",
        "applied",
        "marked_paid",
        "signed",
        "webhook_id",
        "received_payload",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-received_at", "-id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="payload")
    def received_payload(self, notification: CRMNotification) -> str:
        return pretty_json(notification.payload)


class StoredRecordAdmin(admin.ModelAdmin):
    """What a CRM record holds (a booking's, a waitlist entry's): read-only but for staff's
    review fields, with its latest payload on its own page."""

    editable = ("reviewed", "notes")
    shown = ("latest_payload",)  # computed fields shown read-only beside the stored ones

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("payload")  # shown on its own page only

    def get_readonly_fields(self, request, obj=None):
        stored = [f.name for f in self.model._meta.fields if f.name not in self.editable]
        return [*stored, *self.shown]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="payload")
    def latest_payload(self, record) -> str:
        return pretty_json(record.payload)


@admin.register(CRMBooking)
class CRMBookingAdmin(StoredRecordAdmin):
    """Staff mark bookings reviewed and keep notes; everything received is read-only."""

    list_display = [
        "booking_id",
        "user_name",
        "user_email",
        "event_id",
        "event_title",
        "type",
        "status",
        "payment_status",
        "sequence",
        "updated_at",
        "reviewed",
    ]
    list_display_links = ["booking_id", "user_name"]
    list_editable = ["reviewed"]
    list_filter = ["reviewed", "type", "status", "payment_status"]
    search_fields = ["=booking_id", "user_name", "user_email", "event_title", "notes"]
    date_hierarchy = "updated_at"
    fieldsets = [
        ("Review", {"fields": ["reviewed", "notes"]}),
        (
            "Booking, as last notified",
            {
                "fields": [
                    "booking_id",
                    "user_id",
                    "user_name",
                    "user_email",
                    "event_id",
                    "event_title",
                    "starts_at",
                    "facilitator_id",
                    "type",
                    "status",
                    "payment_status",
                    "amount",
                    "currency",
                    "sequence",
                    "notified_seats",
                    "notified_attendees",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        ("Raw payload", {"fields": ["latest_payload"]}),
    ]
    inlines = [CRMNotificationInline]
    shown = ("notified_seats", "notified_attendees", "latest_payload")

    # A group booking's seats and attendees are kept in the payload only, shown from there.
    # The receiver checks their shape now; a payload stored before it did may have any.
    @admin.display(description="seats")
    def notified_seats(self, crm_booking: CRMBooking):
        return crm_booking.payload.get("seats", "-")

    @admin.display(description="attendees")
    def notified_attendees(self, crm_booking: CRMBooking) -> str:
        seats = crm_booking.payload.get("attendees")
        if not seats or not isinstance(seats, list):
            return "-"
        return format_html_join(
            "",
            "<div>{} &lt;{}&gt;: {}</div>",
            (
                (seat.get("name", ""), seat.get("email") or "no email", seat.get("status", ""))
                for seat in seats
                if isinstance(seat, dict)
            ),
        )


class CRMWaitlistNotificationInline(CRMNotificationInline):
    """A waitlist entry's notifications: no payment fields (a waitlist change has none)."""

    fields = [
        "received_at",
        "type",
        "sequence",
        "status",
        "applied",
        "signed",
        "webhook_id",
        "received_payload",
    ]
    readonly_fields = fields


@admin.register(CRMWaitlistEntry)
class CRMWaitlistEntryAdmin(StoredRecordAdmin):
    """Waitlist entries as the CRM was told (`waitlist.*`); staff mark them reviewed."""

    list_display = [
        "waitlist_entry_id",
        "user_name",
        "user_email",
        "event_id",
        "event_title",
        "type",
        "status",
        "seats",
        "offer_expires_at",
        "booking_id",
        "sequence",
        "updated_at",
        "reviewed",
    ]
    list_display_links = ["waitlist_entry_id", "user_name"]
    list_editable = ["reviewed"]
    list_filter = ["reviewed", "type", "status"]
    search_fields = [
        "=waitlist_entry_id", "=booking_id", "=event_id", "user_name", "user_email",
        "event_title", "notes",
    ]  # fmt: skip
    date_hierarchy = "updated_at"
    fieldsets = [
        ("Review", {"fields": ["reviewed", "notes"]}),
        (
            "Waitlist entry, as last notified",
            {
                "fields": [
                    "waitlist_entry_id",
                    "user_id",
                    "user_name",
                    "user_email",
                    "event_id",
                    "event_title",
                    "starts_at",
                    "type",
                    "status",
                    "seats",
                    "offer_expires_at",
                    "booking_id",
                    "reason",
                    "sequence",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        ("Raw payload", {"fields": ["latest_payload"]}),
    ]
    inlines = [CRMWaitlistNotificationInline]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Messages sent to the CRM (and forwards). Failed or given-up ones can be redelivered."""

    list_display = [
        "id",
        "kind",
        "event_type",
        "booking_link",
        "waitlist_entry_id",
        "sequence",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "succeeded_at",
        "created_at",
    ]
    list_filter = ["status", "kind", "event_type"]
    search_fields = ["=booking_id", "=waitlist_entry_id", "webhook_id", "target_url"]
    date_hierarchy = "created_at"
    actions = ["redeliver"]
    fields = [
        "kind",
        "status",
        "webhook_id",
        "target_url",
        "event_type",
        "booking_link",
        "waitlist_entry_id",
        "sequence",
        "notification",
        "attempts",
        "last_status_code",
        "last_error",
        "last_attempt_at",
        "next_attempt_at",
        "retry_until",
        "succeeded_at",
        "created_at",
        "updated_at",
        "sent_payload",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).for_listing()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="booking", ordering="booking_id")
    def booking_link(self, delivery: Delivery) -> str:
        if delivery.booking_id is None:
            return "-"
        url = reverse("admin:bookings_booking_change", args=[delivery.booking_id])
        return format_html('<a href="{}">#{}</a>', url, delivery.booking_id)

    @admin.display(description="payload")
    def sent_payload(self, delivery: Delivery) -> str:
        return pretty_json(delivery.payload)

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        # Deliveries are read-only in the admin; sending one again is what "change" allows.
        return request.user.has_perm("crm.change_delivery")

    @admin.action(description="Redeliver the selected deliveries now", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        queued = sum(notifier.redeliver(delivery_id=pk) for pk in ids)
        skipped = len(ids) - queued
        message = f"{queued} deliveries queued again."
        if skipped:
            message += f" {skipped} already delivered (or under way) were left alone."
        self.message_user(request, message, messages.SUCCESS if queued else messages.WARNING)
