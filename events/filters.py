"""Catalogue filters. A malformed value is a 400 naming the parameter, never ignored."""

from datetime import UTC

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field

from events.models import EventStatus

TRUE_VALUES = {"true", "1", "yes"}
FALSE_VALUES = {"false", "0", "no"}


class StrictBooleanField(forms.Field):
    """`true`/`false` (also 1/0, yes/no); anything else is an error, not "no filter"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in TRUE_VALUES:
            return True
        if text in FALSE_VALUES:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601 with any offset, compared in UTC (PostgreSQL refuses offsets beyond ±15:59)."""

    def clean(self, value):
        moment = super().clean(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError as error:
            raise forms.ValidationError("Out of range.", code="invalid") from error


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class StrictFilterSet(django_filters.FilterSet):
    """A typed parameter given without a value (`?rating=`) is a 400, not "no filter"."""

    free_text = (django_filters.CharFilter,)

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            # Only the filters this request names: django-filter deep-copies every filter and
            # builds a form field for each, a sixth of the catalogue page's time
            # (bench/README.md). A filter not named does nothing anyway.
            self.base_filters = {
                name: filter_ for name, filter_ in self.base_filters.items() if name in data
            }
        super().__init__(data, *args, **kwargs)

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, filter_ in self.filters.items():
            if isinstance(filter_, self.free_text) or name not in self.data:
                continue
            if any(value == "" for value in self.data.getlist(name)):
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid


class EventFilter(StrictFilterSet):
    type = django_filters.CharFilter(
        method="filter_type",
        help_text="Event type, case-insensitive. Several: `type=Yoga&type=Meditation` or "
        "`type=Yoga,Meditation`.",
    )
    rating = django_filters.NumberFilter(
        field_name="rating",
        lookup_expr="gte",
        min_value=0,
        max_value=5,
        help_text="Minimum rating.",
    )
    facilitator = django_filters.NumberFilter(field_name="facilitator_id")
    starts_after = UtcDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = UtcDateTimeFilter(field_name="starts_at", lookup_expr="lte")
    price_min = django_filters.NumberFilter(field_name="price", lookup_expr="gte", min_value=0)
    price_max = django_filters.NumberFilter(field_name="price", lookup_expr="lte", min_value=0)
    available = StrictBooleanFilter(
        method="filter_available", help_text="Only events with seats left."
    )
    search = django_filters.CharFilter(
        method="filter_search", help_text="Words in title or description."
    )
    include_past = StrictBooleanFilter(
        method="include_only", help_text="Also show events that have started (hidden by default)."
    )
    include_cancelled = StrictBooleanFilter(
        method="include_only", help_text="Also show cancelled events (hidden by default)."
    )
    ordering = django_filters.OrderingFilter(
        fields=["starts_at", "rating", "price"],
        help_text="starts_at, rating or price; prefix with - for descending.",
    )

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        if not data.get("include_past"):
            queryset = queryset.filter(starts_at__gt=timezone.now())
        if not data.get("include_cancelled"):
            queryset = queryset.filter(status=EventStatus.SCHEDULED)
        return super().filter_queryset(queryset)

    def include_only(self, queryset, name, value):
        return queryset  # applied in filter_queryset (they widen the default scope)

    def filter_type(self, queryset, name, value):
        types = {t.strip() for raw in self.data.getlist(name) for t in raw.split(",") if t.strip()}
        condition = Q()
        for event_type in types:
            condition |= Q(type__iexact=event_type)
        return queryset.filter(condition)

    def filter_available(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(seats_left__gt=0) if value else queryset.filter(seats_left__lte=0)

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))


# The bounds the filters enforce, stated in the OpenAPI schema (drf-spectacular does not
# read them from the filters).
BOUNDED_PARAMETERS = [
    OpenApiParameter(
        "rating",
        {"type": "number", "minimum": 0, "maximum": 5},
        description="Minimum rating, 0 to 5.",
    ),
    OpenApiParameter("price_min", {"type": "number", "minimum": 0}, description="Lowest price."),
    OpenApiParameter("price_max", {"type": "number", "minimum": 0}, description="Highest price."),
]
