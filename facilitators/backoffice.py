"""The facilitators' back office: a second AdminSite at /backoffice/.

A separate site, not the main admin with scoped permissions: facilitators never get
`is_staff`, so /admin/ (users, CRM records, Stripe tables) stays closed to them by
construction, and this site registers only what they may see, each list scoped to the
signed-in facilitator's own events. Changes go through the same services as the API.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.forms import LimitedLoginForm
from ahoum.errors import DomainError
from bookings import admin as bookings_admin
from bookings.models import Booking, BookingAudit, WaitlistEntry
from bookings.services import event_cancellation, waitlist
from events import services as event_services
from events.models import Event, EventStatus
from facilitators import exports, selectors


def may_use_backoffice(user) -> bool:
    return bool(user.is_active and (user.is_facilitator or user.is_staff))


class BackOfficeLoginForm(LimitedLoginForm):
    error_messages = {
        **LimitedLoginForm.error_messages,
        "invalid_login": "Please enter the correct email and password of a facilitator "
        "account. Note that both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user):
        # The same answer as a wrong password: a right password of a non-facilitator account
        # must not tell anyone that it is right.
        if not may_use_backoffice(user):
            raise self.get_invalid_login_error()


class BackOfficeSite(admin.AdminSite):
    site_header = "Ahoum back office"
    site_title = "Ahoum back office"
    index_title = "Your events and registrations"
    login_form = BackOfficeLoginForm

    def has_permission(self, request) -> bool:
        return may_use_backoffice(request.user)


backoffice = BackOfficeSite(name="backoffice")


class OwnRowsAdmin(admin.ModelAdmin):
    """Rows of the facilitator's own events only; anything else is a 404."""

    owner_lookup = "facilitator"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        return rows if request.user.is_staff else rows.filter(**{self.owner_lookup: request.user})

    def get_object(self, request, object_id, from_field=None):
        row = super().get_object(request, object_id, from_field)  # from the scoped queryset
        if row is None:
            raise Http404("No such item among yours.")
        return row

    def has_module_permission(self, request) -> bool:
        return may_use_backoffice(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return may_use_backoffice(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class EventForm(forms.ModelForm):
    class Meta:
        model = Event
        fields = ["title", "description", "type", "starts_at", "ends_at", "timezone", "location",
                  "capacity", "waitlist_open", "price", "currency"]  # fmt: skip

    def clean_capacity(self):
        capacity = self.cleaned_data["capacity"]
        if self.instance.pk:
            try:  # the service checks again under the event's lock when saving
                event_services.check_capacity(event=self.instance, capacity=capacity)
            except DomainError as error:
                raise ValidationError(str(error.detail)) from error
        return capacity


@admin.register(Event, site=backoffice)
class EventBackOffice(OwnRowsAdmin):
    form = EventForm
    list_display = ["title", "type", "starts_at", "capacity", "seats_left", "waitlist_link",
                    "status", "registrations_csv_link"]  # fmt: skip
    list_filter = ["status", "type"]
    search_fields = ["title"]
    readonly_fields = ["status", "seats_waiting", "waitlist_link", "cancelled_at",
                       "cancellation_reason"]  # fmt: skip
    actions = ["cancel_events", "close_waitlist", "open_waitlist"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .with_seats_left()
            .annotate(waitlist_waiting=selectors.waiting_entries_count())
        )

    def get_urls(self):
        registrations = path(
            "<path:object_id>/registrations.csv",
            self.admin_site.admin_view(self.registrations_csv),
            name="events_event_registrations_csv",
        )
        return [registrations, *super().get_urls()]

    @admin.display(description="Seats left", ordering="seats_left")
    def seats_left(self, event) -> int:
        return event.seats_left

    @admin.display(description="Waiting", ordering="waitlist_waiting")
    def waitlist_link(self, event) -> str:
        """How many wait, linked to the event's waitlist (open or closed)."""
        if event.pk is None:
            return "-"
        url = reverse(f"{self.admin_site.name}:bookings_waitlistentry_changelist")
        label = f"{event.waitlist_waiting}" + ("" if event.waitlist_open else " (closed)")
        return format_html('<a href="{}?event__id__exact={}">{}</a>', url, event.pk, label)

    @admin.display(description="Registrations")
    def registrations_csv_link(self, event) -> str:
        url = reverse(f"{self.admin_site.name}:events_event_registrations_csv", args=[event.pk])
        return format_html('<a href="{}">CSV</a>', url)

    def registrations_csv(self, request, object_id):
        """The event's registrations, one row per attendee, streamed (`facilitators.exports`).

        Through the scoped `get_object`: another facilitator's event is a 404, as its page.
        """
        event = self.get_object(request, unquote(object_id))
        if not self.has_view_permission(request, event):
            raise PermissionDenied
        response = StreamingHttpResponse(
            exports.csv_lines(exports.registration_rows(event)),
            content_type="text/csv; charset=utf-8",
        )
        filename = exports.registrations_filename(event)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def has_add_permission(self, request) -> bool:
        return request.user.is_facilitator

    def has_change_permission(self, request, obj=None) -> bool:
        return may_use_backoffice(request.user) and (
            obj is None or obj.status == EventStatus.SCHEDULED
        )

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in form.changed_data}
        if change:
            event_services.update_event(event=obj, by=request.user, **fields)
        else:
            created = event_services.create_event(by=request.user, **form.cleaned_data)
            obj.pk = created.pk

    @admin.action(description="Cancel selected events (refund paid bookings)")
    def cancel_events(self, request, queryset):
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "backoffice/cancel_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Cancel events?",
                    "events": queryset,
                    "opts": self.model._meta,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        reason = request.POST.get("reason", "").strip()
        for event in queryset:
            summary = event_cancellation.cancel_event(event=event, by=request.user, reason=reason)
            self.message_user(
                request,
                f"{event.title}: cancelled. Its bookings are being cancelled and paid ones "
                f"refunded ({summary.to_settle} bookings to settle, {summary.refunds_pending} "
                "refunds under way).",
                messages.SUCCESS,
            )
        return None

    @admin.action(description="Close waitlist (those waiting keep their place)",
                  permissions=["change"])  # fmt: skip
    def close_waitlist(self, request, queryset):
        for event in queryset:
            waitlist.set_open(event=event, is_open=False)
        self.message_user(request, f"Waitlist closed on {len(queryset)} events.", messages.SUCCESS)

    @admin.action(description="Open waitlist", permissions=["change"])
    def open_waitlist(self, request, queryset):
        for event in queryset:
            waitlist.set_open(event=event, is_open=True)
        self.message_user(request, f"Waitlist opened on {len(queryset)} events.", messages.SUCCESS)


class AttendeeInline(bookings_admin.AttendeeInline):
    """The booking's seats, read-only (as staff see them), to the facilitator of its event."""

    def has_view_permission(self, request, obj=None) -> bool:
        return may_use_backoffice(request.user)


class AuditInline(admin.TabularInline):
    model = BookingAudit
    fields = ["version", "change", "from_status", "to_status", "to_payment_status", "attendee",
              "reason", "created_at"]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return may_use_backoffice(request.user)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("attendee")


@admin.register(Booking, site=backoffice)
class BookingBackOffice(OwnRowsAdmin):
    owner_lookup = "event__facilitator"
    list_display = ["id", "booker", "event", "seats", "status", "payment_status", "amount",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "payment_status"]
    # A guest is found by their own name or email too.
    search_fields = ["user__email", "user__name", "event__title", "attendees__name",
                     "attendees__email"]  # fmt: skip
    list_select_related = ["user", "event"]
    inlines = [AttendeeInline, AuditInline]

    fields = ["booker", "event", "seats", "status", "payment_status", "amount", "currency",
              "hold_expires_at", "created_at", "confirmed_at", "cancelled_at",
              "refunded_at"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Booked by")
    def booker(self, booking) -> str:
        return f"{booking.user.name} <{booking.user.email}>"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WaitlistEntry, site=backoffice)
class WaitlistEntryBackOffice(bookings_admin.ReadOnlyWaitlist, OwnRowsAdmin):
    """Who waits for seats of the facilitator's events, read-only (with their place)."""

    owner_lookup = "event__facilitator"
    list_display = ["id", "person", "event", "seats", "status", "position", "created_at",
                    "offer_expires_at"]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["user__email", "user__name", "event__title"]
    list_select_related = ["user", "event"]
    fields = ["person", "event", "seats", "status", "position", "created_at", "offered_at",
              "offer_expires_at", "ended_at", "reason"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Person")
    def person(self, entry) -> str:
        return f"{entry.user.name} <{entry.user.email}>"
