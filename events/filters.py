"""Catalogue filters. A malformed value, or an unknown parameter, is a 400 naming it."""

import re
from datetime import UTC
from decimal import Decimal
from urllib.parse import urlencode

import django_filters
from django import forms
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connections
from django.db.models import F, Q
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_filters.constants import EMPTY_VALUES
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from ahoum.pagination import PageNumberPagination
from events.models import EventStatus, lapsed_holds

TRUE_VALUES = {"true", "1", "yes"}
# Search: a word, and what makes a query more than a list of words (websearch_to_tsquery).
WORD = re.compile(r"\w+")
SEARCH_OPERATORS = re.compile(r"[\"]|(^|\s)-|\bor\b", re.IGNORECASE)
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


class CatalogueOrdering(django_filters.OrderingFilter):
    """The requested order, then start time and id: the same page for the same query, and
    the order each of the catalogue's indexes is sorted in (events/models.py)."""

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        ordering = [self.get_ordering_value(param) for param in value if param not in EMPTY_VALUES]
        for tie_break in ("starts_at", "id"):
            if tie_break not in ordering and f"-{tie_break}" not in ordering:
                ordering.append(tie_break)
        return qs.order_by(*ordering)


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
        method="filter_search",
        max_length=200,
        help_text="Words in the title, type, location or description. On PostgreSQL: full "
        'text (stemmed; "phrases", -word, or), plain words also as prefixes, results by '
        "relevance unless `ordering` is given.",
    )
    include_past = StrictBooleanFilter(
        method="include_only", help_text="Also show events that have started (hidden by default)."
    )
    include_cancelled = StrictBooleanFilter(
        method="include_only", help_text="Also show cancelled events (hidden by default)."
    )
    ordering = CatalogueOrdering(
        fields=["starts_at", "rating", "price"],
        help_text="starts_at, rating or price; prefix with - for descending. Without it: by "
        "start time, or by relevance when searching (PostgreSQL).",
    )

    def is_valid(self) -> bool:
        valid = super().is_valid()
        # filter_type reads every value of a repeated `type`; the form checks only the last
        # (a NUL byte is a 500 on PostgreSQL). Each value passes the form field's checks.
        if "type" in self.filters:
            field = self.form.fields["type"]
            for value in self.data.getlist("type")[:-1]:
                try:
                    field.clean(value)
                except forms.ValidationError as error:
                    self.form.add_error("type", error)
                    valid = False
                    break
        return valid

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
        # seats_left > 0, read from the counter; only an event full by the counter pays for
        # counting its lapsed holds (the second test is not reached for the others).
        # Seats the waitlist waits for are not for sale (seats_waiting).
        taken = F("seats_claimed") + F("seats_waiting")
        has_seats = Q(capacity__gt=taken) | Q(capacity__gt=taken - lapsed_holds())
        return queryset.filter(has_seats) if value else queryset.exclude(has_seats)

    def filter_search(self, queryset, name, value):
        if connections[queryset.db].vendor != "postgresql":
            return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))
        # Full text over the GIN index: words in any order, "quoted phrases", -excluded, `or`
        # (websearch_to_tsquery), stemmed ("breathing" finds "breath"). Plain words also match
        # as prefixes ("breath" finds "Breathwork"); with quotes, - or `or` they match as
        # written.
        query = SearchQuery(value, search_type="websearch", config="english")
        words = WORD.findall(value)
        if words and not SEARCH_OPERATORS.search(value):
            prefixes = " & ".join(f"{word}:*" for word in words)
            query |= SearchQuery(prefixes, search_type="raw", config="english")
        queryset = queryset.filter(search_vector=query)
        if "ordering" not in self.data:
            rank = SearchRank(F("search_vector"), query)
            queryset = queryset.annotate(rank=rank).order_by("-rank", "starts_at", "id")
        return queryset


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


# --- the catalogue's query in one spelling per meaning (the cache's key, events/cache.py) --------

PAGE = PageNumberPagination.page_query_param
PAGE_SIZE = PageNumberPagination.page_size_query_param
# What else a client may send: the pages, and DRF's ?format=json (any other format is a 404
# before a page is built).
OTHER_PARAMETERS = (PAGE, PAGE_SIZE, api_settings.URL_FORMAT_OVERRIDE)
KNOWN_PARAMETERS = frozenset(EventFilter.base_filters) | frozenset(OTHER_PARAMETERS)

_WHOLE_NUMBER = re.compile(r"[0-9]+")
_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def catalogue_query(params: QueryDict) -> str:
    """The list's parameters, each in one spelling per meaning; a 400 names unknown ones.

    Two queries with the same result here give the same page: parameters in any order,
    `4.50` and `4.5`, `true` and `True`, `type=Yoga,Meditation` and `type=meditation&type=YOGA`,
    one instant at any UTC offset, a default written out (`page=1`, `page_size=20`,
    `include_past=false`). Only what provably means the same is merged; anything else keeps
    its spelling (a key of its own, never someone else's page). Unknown names are refused:
    a typo (`?types=Yoga`) would otherwise list everything, and every junk parameter
    (`?junk=1`, `?junk=2`, ...) was a new page in the cache.
    """
    unknown = sorted(set(params) - KNOWN_PARAMETERS)
    if unknown:
        takes = ", ".join(sorted(KNOWN_PARAMETERS))
        raise ValidationError(
            {name: [f"Unknown parameter. The catalogue takes: {takes}."] for name in unknown}
        )
    canonical = []
    for name in sorted(params):
        value = _canonical(name, params.getlist(name))
        if value is not None:
            canonical.append((name, value))
    return urlencode(canonical, doseq=True)


def _canonical(name: str, values: list[str]) -> str | list[str] | None:
    """One parameter's meaning as the filters and the paginator read it; None: as if absent."""
    last = values[-1]  # what django-filter and DRF read of a repeated parameter
    if name == "type":
        if not last.strip():
            return None  # the filter runs only when its (last) value is not blank
        # filter_type: the union of every value's comma-separated names, compared with iexact
        # (ASCII-only case folding on SQLite, so only ASCII is folded here).
        names = {part.strip().translate(_ASCII_LOWER) for raw in values for part in raw.split(",")}
        return ",".join(sorted(names - {""}))
    if name == "search":
        return last.strip() or None  # stripped by its form field; blank is no search
    if name == PAGE:
        # A blank or malformed page is a 400 (ahoum/pagination.py); "last" stays as it is.
        number = _whole_number(last)
        return None if number == 1 else str(number) if number is not None else last
    if name == PAGE_SIZE:
        size = _whole_number(last)
        if size is None or size < 1:
            return last  # a 400
        size = min(size, PageNumberPagination.max_page_size)  # larger values are capped
        return None if size == api_settings.PAGE_SIZE else str(size)
    if "" in values:
        return values  # a typed parameter given without a value: a 400 (StrictFilterSet)
    if name in ("rating", "facilitator", "price_min", "price_max"):
        return _number(last)
    if name in ("available", "include_past", "include_cancelled"):
        flag = _flag(last)
        if flag == "false" and name != "available":
            return None  # the default: started and cancelled events stay hidden
        return flag
    if name in ("starts_after", "starts_before"):
        return _instant(last)
    return last  # ordering (order and case matter), format


def _whole_number(text: str) -> int | None:
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


def _number(text: str) -> str:
    """A plain decimal as its shortest spelling ("04.50" is "4.5"); anything else as given."""
    stripped = text.strip()  # as forms.DecimalField does
    if not _PLAIN_NUMBER.fullmatch(stripped):
        return text
    return format(Decimal(stripped).normalize(), "f")


def _flag(text: str) -> str:
    lowered = text.strip().lower()
    return "true" if lowered in TRUE_VALUES else "false" if lowered in FALSE_VALUES else text


def _instant(text: str) -> str:
    """An ISO 8601 date-time with an offset as the same instant in UTC; anything else as given.

    Without an offset it is read in the server's time zone, so it keeps its spelling.
    """
    try:
        moment = parse_datetime(text.strip())
        if moment is None or moment.tzinfo is None:
            return text
        return moment.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):  # not a date, or beyond year 9999 in UTC: a 400
        return text
