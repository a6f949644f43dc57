from django.contrib import admin

from bookings.models import Booking
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
    list_display = ["title", "type", "starts_at", "facilitator", "capacity", "seats_left", "status"]
    list_filter = ["status", "type", "starts_at"]
    search_fields = ["title", "description", "facilitator__email", "facilitator__name"]
    date_hierarchy = "starts_at"
    list_select_related = ["facilitator"]
    raw_id_fields = ["facilitator"]
    readonly_fields = ["status", "cancelled_at", "cancellation_reason", "created_at", "updated_at"]
    inlines = [BookingInline]

    def get_queryset(self, request):
        return super().get_queryset(request).with_seats_left()

    @admin.display(description="Seats left", ordering="seats_left")
    def seats_left(self, obj) -> int:
        return obj.seats_left
