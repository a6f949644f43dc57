"""The staff admin site: Django's, opening on what needs a person's attention."""

from django.contrib import admin
from django.urls import reverse

from accounts.forms import LimitedLoginForm
from ahoum.attempts import AttemptStatus


class AhoumAdminSite(admin.AdminSite):
    site_header = "Ahoum administration"
    site_title = "Ahoum admin"
    index_title = "Ahoum"
    index_template = "admin/ahoum_index.html"
    login_form = LimitedLoginForm

    def index(self, request, extra_context=None):
        return super().index(request, {"attention": needs_attention(), **(extra_context or {})})


def needs_attention() -> list[dict]:
    """What staff must act on, each with its count and its filtered admin list (4 queries)."""
    from bookings.models import BookingEmail, PaymentIssue, Refund
    from crm.models import Delivery

    gave_up = {"status__exact": AttemptStatus.GAVE_UP}
    items = [
        ("Open payment issues", PaymentIssue.objects.filter(resolved=False),
         "admin:bookings_paymentissue_changelist", {"resolved__exact": 0}),
        ("Refunds given up", Refund.objects.filter(**gave_up),
         "admin:bookings_refund_changelist", gave_up),
        ("CRM deliveries given up", Delivery.objects.filter(**gave_up),
         "admin:crm_delivery_changelist", gave_up),
        ("Emails given up", BookingEmail.objects.filter(**gave_up),
         "admin:bookings_bookingemail_changelist", gave_up),
    ]  # fmt: skip
    return [
        {
            "label": label,
            "count": queryset.count(),
            "url": reverse(url_name) + "?" + "&".join(f"{k}={v}" for k, v in query.items()),
        }
        for label, queryset, url_name, query in items
    ]
