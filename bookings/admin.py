from django.contrib import admin

from bookings.models import Booking, BookingAudit


class BookingAuditInline(admin.TabularInline):
    model = BookingAudit
    fields = [
        "version",
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
        return super().get_queryset(request).select_related("actor")


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    """Read-only: a booking changes only through the bookings services (and their audit)."""

    list_display = [
        "id",
        "user",
        "event",
        "status",
        "payment_status",
        "amount",
        "currency",
        "created_at",
    ]
    list_filter = ["status", "payment_status"]
    search_fields = ["user__email", "event__title"]
    list_select_related = ["user", "event"]
    date_hierarchy = "created_at"
    inlines = [BookingAuditInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Booking._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
