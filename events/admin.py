from django.contrib import admin

from bookings.admin import WaitlistInline
from bookings.models import Booking
from bookings.services import waitlist
from events.models import Event


class BookingInline(admin.TabularInline):
    model = Booking
    fields = ["id", "user", "status", "payment_status", "seats", "amount", "currency", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["title", "type", "starts_at", "facilitator", "capacity", "seats_left",
                    "seats_waiting", "waitlist_open", "status"]  # fmt: skip
    list_filter = ["status", "type", "starts_at"]
    search_fields = ["title", "description", "facilitator__email", "facilitator__name"]
    date_hierarchy = "starts_at"
    list_select_related = ["facilitator"]
    raw_id_fields = ["facilitator"]
    readonly_fields = ["status", "seats_waiting", "cancelled_at", "cancellation_reason",
                       "created_at", "updated_at"]  # fmt: skip
    inlines = [BookingInline, WaitlistInline]
    actions = ["close_waitlist", "open_waitlist"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_seats_left()

    @admin.display(description="Seats left", ordering="seats_left")
    def seats_left(self, obj) -> int:
        return obj.seats_left

    @admin.action(
        description="Close waitlist (those waiting keep their place)", permissions=["change"]
    )
    def close_waitlist(self, request, queryset):
        for event in queryset:
            waitlist.set_open(event=event, is_open=False)
        self.message_user(request, f"Waitlist closed on {len(queryset)} events.")

    @admin.action(description="Open waitlist", permissions=["change"])
    def open_waitlist(self, request, queryset):
        for event in queryset:
            waitlist.set_open(event=event, is_open=True)
        self.message_user(request, f"Waitlist opened on {len(queryset)} events.")
