from django.contrib import admin

from ahoum.attempts import AttemptStatus
from bookings.models import (
    Attendee,
    Booking,
    BookingAudit,
    BookingEmail,
    CheckoutSessionExpiry,
    Payment,
    PaymentIssue,
    Refund,
    StripeEventReceipt,
    WaitlistEmail,
    WaitlistEntry,
)
from bookings.services import refunds


class ReadOnlyWaitlist:
    """What staff and facilitators see of waitlist entries: changed only by
    `bookings.services.waitlist` (people join, leave and accept through the API)."""

    def get_queryset(self, request):
        return super().get_queryset(request).with_positions()

    @admin.display(description="Position", ordering="queue_position")
    def position(self, entry: WaitlistEntry) -> int | None:
        return entry.queue_position

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class WaitlistInline(ReadOnlyWaitlist, admin.TabularInline):
    """The event's open entries (waiting and offered), in the order people joined."""

    model = WaitlistEntry
    fields = ["id", "user", "seats", "status", "position", "created_at", "offer_expires_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    verbose_name_plural = "waitlist (open entries)"

    def get_queryset(self, request):
        entries = super().get_queryset(request).open().select_related("user")
        return entries.order_by("created_at", "id")


class AttendeeInline(admin.TabularInline):
    """The booking's seats, read-only: a seat is cancelled through the bookings services."""

    model = Attendee
    fields = ["position", "name", "email", "seat_status", "is_booker", "created_at",
              "cancelled_at"]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("booking")

    @admin.display(description="Status")
    def seat_status(self, attendee: Attendee) -> str:
        return attendee.status_in(attendee.booking)


class BookingAuditInline(admin.TabularInline):
    model = BookingAudit
    fields = [
        "version",
        "change",
        "attendee",
        "from_status",
        "to_status",
        "from_payment_status",
        "to_payment_status",
        "actor",
        "reason",
        "created_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor", "attendee")


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    """Read-only: a booking changes only through the bookings services (and their audit)."""

    list_display = [
        "id",
        "user",
        "event",
        "seats",
        "status",
        "payment_status",
        "amount",
        "currency",
        "created_at",
    ]
    list_filter = ["status", "payment_status"]
    # A guest is found by their own name or email too.
    search_fields = ["user__email", "event__title", "attendees__email", "attendees__name"]
    list_select_related = ["user", "event"]
    date_hierarchy = "created_at"
    inlines = [AttendeeInline, BookingAuditInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Booking._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    """Every paid Checkout Session; a second payment of one booking is refunded in full."""

    list_display = ["created_at", "booking", "amount", "currency", "settles_booking", "paid_at"]
    list_filter = ["settles_booking"]
    search_fields = ["checkout_session_id", "payment_intent_id", "booking__user__email"]
    list_select_related = ["booking"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Payment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    """Money owed back. The worker retries failures on its own; `gave_up` ones need a person."""

    list_display = [
        "booking",
        "attendee",
        "amount",
        "currency",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "updated_at",
    ]
    list_filter = ["status"]
    search_fields = ["booking__user__email", "booking__event__title", "stripe_refund_id"]
    list_select_related = ["booking", "attendee"]
    actions = ["retry_now"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Refund._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Retry the selected refunds now (by the worker)")
    def retry_now(self, request, queryset):
        queued = 0
        for refund in queryset.filter(status__in=[AttemptStatus.GAVE_UP, AttemptStatus.PENDING]):
            queued += refunds.retry(refund_id=refund.pk) is not None
        self.message_user(
            request, f"{queued} refunds queued; the worker makes them in the next seconds."
        )


@admin.register(PaymentIssue)
class PaymentIssueAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "booking", "stripe_object_id", "resolved"]
    list_filter = ["resolved", "kind"]
    list_editable = ["resolved"]
    list_select_related = ["booking"]
    search_fields = ["detail", "stripe_object_id"]
    readonly_fields = ["booking", "kind", "detail", "stripe_object_id", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BookingEmail)
class BookingEmailAdmin(admin.ModelAdmin):
    """What each attendee and facilitator was told, and whether the mail server took it."""

    list_display = [
        "created_at", "booking", "kind", "to_email", "status", "attempts", "succeeded_at"
    ]  # fmt: skip
    list_filter = ["status", "kind", "recipient_kind"]
    search_fields = ["to_email", "booking__event__title"]
    list_select_related = ["booking"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WaitlistEmail)
class WaitlistEmailAdmin(BookingEmailAdmin):
    """What people on waitlists were told (joined, offered, expired), and whether it left."""

    list_display = [
        "created_at", "entry", "kind", "to_email", "status", "attempts", "succeeded_at"
    ]  # fmt: skip
    list_filter = ["status", "kind"]
    search_fields = ["to_email", "entry__event__title"]
    list_select_related = ["entry"]


@admin.register(StripeEventReceipt, CheckoutSessionExpiry)
class StripeWorkAdmin(admin.ModelAdmin):
    """Stripe events being applied and sessions being expired by the worker (read-only)."""

    list_display = ["__str__", "status", "attempts", "next_attempt_at", "last_error", "created_at"]
    list_filter = ["status"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(ReadOnlyWaitlist, admin.ModelAdmin):
    list_display = ["id", "user", "event", "seats", "status", "position", "created_at",
                    "offer_expires_at"]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["user__email", "event__title"]
    list_select_related = ["user", "event"]
    raw_id_fields = ["user", "event", "booking"]
    date_hierarchy = "created_at"

    def get_fields(self, request, obj=None):
        return [field.name for field in WaitlistEntry._meta.fields] + ["position"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)
