import django_filters
from django.utils import timezone

from bookings.models import Booking, BookingStatus
from events.filters import StrictFilterSet


class BookingFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=BookingStatus.choices)
    when = django_filters.ChoiceFilter(
        choices=[("upcoming", "Upcoming"), ("past", "Past")],
        method="filter_when",
        help_text="upcoming: the event has not started; past: it has.",
    )

    class Meta:
        model = Booking
        fields = ["status", "when"]

    def filter_when(self, queryset, name, value):
        now = timezone.now()
        if value == "upcoming":
            return queryset.filter(event__starts_at__gt=now)
        return queryset.filter(event__starts_at__lte=now)
