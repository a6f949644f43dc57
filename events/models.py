import functools
import operator
import zoneinfo
from datetime import timedelta
from decimal import Decimal

from django.apps import apps
from django.conf import settings
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import connections, models
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, Upper
from django.utils import timezone

from bookings.money import STRIPE_CURRENCIES, minor_unit_exponent
from events import cache as catalogue_cache

# How far ahead an event may be scheduled (five years, leap days included), and how far back
# one may be entered (the admin recording a recent past event; the API wants the future).
SCHEDULE_AHEAD = timedelta(days=5 * 366)
# The longest event: a month-long retreat or teacher training. Longer programmes are a series
# of events. Also keeps an invite's VTIMEZONE to a couple of years (bookings/emails.py).
LONGEST_EVENT = timedelta(days=30)
# About two pages of text: a retreat's programme fits. A catalogue page of 100 events with the
# longest texts is then 0.6 MB (2.2 MB in 4-byte characters), in the cache too (events/cache.py).
DESCRIPTION_MAX_LENGTH = 5000

# The IANA areas people live in (https://data.iana.org/time-zones/tz-link.html): Area/Place
# names, which is what attendees pick. Left out: Etc/* (fixed offsets with inverted signs,
# "Etc/GMT+5" is UTC-5), Factory ("-00"), localtime and posixrules (whatever the host has),
# the posix/ and right/ copies some hosts ship, and the old aliases (US/Eastern, CET, EST5EDT)
# whose Area/Place names are accepted.
ATTENDEE_AREAS = frozenset(
    {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe",
     "Indian", "Pacific"}
)  # fmt: skip


@functools.cache
def attendee_timezones() -> frozenset[str]:
    """The zone names an event may have: Area/Place names this host can load, and UTC.

    Computed once per process: reading the zone database takes about a tenth of a second.
    """
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name.partition("/")[0] in ATTENDEE_AREAS and "/" in name
    ) | {"UTC"}


def validate_timezone(name: str) -> None:
    if name not in attendee_timezones():
        raise ValidationError(
            f"Unknown time zone {name!r}; use an IANA name of a place, like Europe/Berlin "
            "or America/New_York (or UTC)."
        )


def validate_currency(code: str) -> None:
    if code not in STRIPE_CURRENCIES:
        raise ValidationError(
            f"{code!r} is not a currency Stripe charges in; use an ISO 4217 code such as EUR "
            "or USD."
        )


def validate_price_precision(*, price, currency) -> None:
    """A price Stripe can charge exactly: no more decimals than the currency has (1000.50 yen
    cannot be paid, and three seats of it would not add up), named by field."""
    if price is None or not currency or currency.upper() not in STRIPE_CURRENCIES:
        return
    decimals = minor_unit_exponent(currency)
    if price != round(price, decimals):
        raise ValidationError(
            {"price": f"{currency.upper()} amounts have {decimals} decimal places at most."}
        )


def validate_schedule(*, starts_at, ends_at, entering: bool, now=None) -> None:
    """Dates any event must keep, named by field: within reach, and of a bounded length.

    `entering`: the event is being created, so it may not start long ago either. A stored
    event is never held to that (time moves on; last year's event keeps being editable).
    """
    now = now or timezone.now()
    errors = {}
    if starts_at is not None:
        if starts_at > now + SCHEDULE_AHEAD:
            errors["starts_at"] = "An event can be scheduled at most 5 years ahead."
        elif entering and starts_at < now - SCHEDULE_AHEAD:
            errors["starts_at"] = "An event cannot start more than 5 years ago."
    if starts_at is not None and ends_at is not None and "starts_at" not in errors:
        if ends_at <= starts_at:
            errors["ends_at"] = "Must be after starts_at."
        elif ends_at - starts_at > LONGEST_EVENT:
            errors["ends_at"] = f"An event lasts at most {LONGEST_EVENT.days} days."
    if errors:
        raise ValidationError(errors)


# The most seats any event lets one booking take, whatever its own setting says.
MAX_SEATS_PER_BOOKING_LIMIT = 100


def default_max_seats_per_booking() -> int:
    return settings.MAX_SEATS_PER_BOOKING


# Written only by the bookings services under the event's lock, never by save().
COUNTERS = frozenset({"seats_claimed", "seats_waiting"})


class EventStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    CANCELLED = "cancelled", "Cancelled"


SCHEDULED = Q(status=EventStatus.SCHEDULED)
# The words `search` finds (PostgreSQL full text, English stemming), title and type first.
SEARCH_DOCUMENT = ("title", "type", "location", "description")


def search_vector() -> SearchVector:
    weights = {"title": "A", "type": "A", "location": "B", "description": "C"}
    vectors = [
        SearchVector(name, weight=weights[name], config="english") for name in SEARCH_DOCUMENT
    ]
    return functools.reduce(operator.add, vectors)


def _seats_per_event(select, model: str = "Booking") -> Coalesce:
    """A subquery: the seats of the outer event's bookings (or waitlist entries, `model`)
    that `select(rows)` keeps."""
    rows = apps.get_model("bookings", model).objects.filter(event=OuterRef("pk"))
    counted = (
        select(rows).order_by().values("event").annotate(seats=models.Sum("seats")).values("seats")
    )
    return Coalesce(Subquery(counted, output_field=models.IntegerField()), 0)


def lapsed_holds(now=None) -> Coalesce:
    """A subquery: the seats of the outer event's holds that lapsed but still count in
    `seats_claimed`."""
    return _seats_per_event(lambda bookings: bookings.stale_holds(now))


class EventQuerySet(models.QuerySet):
    def bookable(self, now=None) -> "EventQuerySet":
        """Scheduled and not started yet: what the catalogue shows by default."""
        return self.filter(status=EventStatus.SCHEDULED, starts_at__gt=now or timezone.now())

    def with_seats_left(self, now=None) -> "EventQuerySet":
        """Annotate `seats_left`: capacity minus the seats held right now (see `seats_taken`).

        Reads the `seats_claimed` counter plus one subquery per row over the event's lapsed
        holds (an index range that is nearly always empty), instead of counting every booking.
        """
        return self.annotate(
            seats_left=Greatest(
                F("capacity") - F("seats_claimed") - F("seats_waiting") + lapsed_holds(now),
                Value(0),
            )
        )

    def recount_claimed_seats(self) -> int:
        """Set `seats_claimed` from the active bookings and open waitlist offers, in one UPDATE.

        For loads that bypass the services (bench/seed.py's bulk inserts) and for checking
        the counter in tests; the services keep it right on their own.
        """
        offers = _seats_per_event(lambda rows: rows.filter(status="offered"), "WaitlistEntry")
        updated = self.update(
            seats_claimed=_seats_per_event(lambda bookings: bookings.active()) + offers
        )
        catalogue_cache.invalidate()
        return updated

    def refresh_search_vector(self) -> int:
        """Write `search_vector` from the texts, in one UPDATE (PostgreSQL; nothing elsewhere).

        `save()` calls it; loads that bypass save() (bench/seed.py) call it themselves.
        """
        if connections[self.db].vendor != "postgresql":
            return 0
        return self.update(search_vector=search_vector())

    def for_catalogue(self) -> "EventQuerySet":
        # The facilitator's name as a column, not a joined User row: the catalogue shows only
        # the name, and building a User per event (password hash and all) was a third of the
        # list's time in the profile (bench/README.md).
        return self.annotate(facilitator_name=F("facilitator__name")).with_seats_left()


class Event(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(
        blank=True,
        max_length=DESCRIPTION_MAX_LENGTH,
        # TextField's max_length alone is only a form hint: full_clean() checks this one.
        validators=[MaxLengthValidator(DESCRIPTION_MAX_LENGTH)],
    )
    type = models.CharField(max_length=50, help_text="e.g. Yoga, Meditation")
    rating = models.DecimalField(
        max_digits=2,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.0")), MaxValueValidator(Decimal("5.0"))],
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA time zone shown to attendees.",
    )
    location = models.CharField(max_length=255, blank=True)
    capacity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    # How many seats one booking may take (a couple, a family, a group of friends).
    max_seats_per_booking = models.PositiveSmallIntegerField(
        default=default_max_seats_per_booking,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SEATS_PER_BOOKING_LIMIT)],
        help_text="Seats one booking may take; MAX_SEATS_PER_BOOKING by default.",
    )
    price = models.DecimalField(
        max_digits=10, decimal_places=2, default=Decimal("0.00"), validators=[MinValueValidator(0)]
    )
    currency = models.CharField(
        max_length=3,
        default=settings.DEFAULT_CURRENCY,
        validators=[validate_currency],
        help_text="ISO 4217 code of a currency Stripe charges in (bookings/money.py).",
    )
    facilitator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="facilitated_events",
        limit_choices_to={"role": "facilitator"},
    )
    status = models.CharField(
        max_length=20, choices=EventStatus.choices, default=EventStatus.SCHEDULED
    )
    # Pending or confirmed bookings. Written only by bookings.services, in the booking's own
    # transaction under this row's lock (an UPDATE ... + 1), never by save() (see below).
    # A hold that lapsed still counts here until it is marked expired: `seats_taken()` and
    # `seats_left` subtract those, so a lapsed hold stops taking a seat at once.
    seats_claimed = models.PositiveIntegerField(default=0, editable=False)
    # Seats the waitlist's waiting entries ask for, written by bookings.services.waitlist under
    # this row's lock like `seats_claimed`: freed seats go to them first, so the public sees
    # capacity - seats_claimed - seats_waiting. Offers made move their seats to seats_claimed.
    seats_waiting = models.PositiveIntegerField(default=0, editable=False)
    waitlist_open = models.BooleanField(
        default=True,
        help_text="Whether people may join the waitlist when it is sold out. Closing it keeps "
        "the people already waiting.",
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Title, type, location and description as PostgreSQL full-text words, written by save()
    # (`refresh_search_vector`); the catalogue's `search` reads it. Empty on SQLite, whose
    # search compares substrings instead (events/filters.py).
    search_vector = SearchVectorField(null=True, editable=False)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        # The catalogue lists scheduled events in one of four orders, optionally by type: one
        # partial index per order, so a page is an index range read up to its last row (and a
        # bounded count, ahoum/pagination.py), whatever the catalogue's size. The full-text
        # index over `search_vector` is PostgreSQL's own (migration 0005).
        indexes = [
            models.Index(
                fields=["starts_at", "id"], condition=SCHEDULED, name="event_bookable_starts_idx"
            ),
            models.Index(
                Upper("type"),
                "starts_at",
                "id",
                condition=SCHEDULED,
                name="event_bookable_type_idx",
            ),
            models.Index(
                fields=["-rating", "starts_at", "id"],
                condition=SCHEDULED,
                name="event_bookable_rating_idx",
            ),
            models.Index(
                fields=["price", "starts_at", "id"],
                condition=SCHEDULED,
                name="event_bookable_price_idx",
            ),
            # The facilitator's own events, newest first (their list and back office).
            models.Index(fields=["facilitator", "-starts_at"], name="event_facilitator_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(capacity__gte=1), name="event_capacity_positive"),
            models.CheckConstraint(condition=Q(price__gte=0), name="event_price_not_negative"),
            models.CheckConstraint(
                condition=Q(max_seats_per_booking__gte=1), name="event_max_seats_positive"
            ),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=0, rating__lte=5),
                name="event_rating_0_to_5",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="event_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.starts_at:%Y-%m-%d})"

    # Whether this instance's row is in the database (read from it, or saved): see save().
    in_database = False

    def save(self, *args, **kwargs):
        # An instance read before a booking and saved after it (the admin's form, a script)
        # would write back a stale counter: an update never writes `seats_claimed` unless
        # asked to by name.
        if self.in_database and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in COUNTERS
            ]
        super().save(*args, **kwargs)
        self.in_database = True
        fields = kwargs.get("update_fields")
        if fields is None or set(fields) & set(SEARCH_DOCUMENT):
            type(self).objects.filter(pk=self.pk).refresh_search_vector()

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance.in_database = True
        return instance

    def clean(self) -> None:
        validate_schedule(starts_at=self.starts_at, ends_at=self.ends_at, entering=self.pk is None)
        validate_price_precision(price=self.price, currency=self.currency)

    def seats_taken(self, now=None) -> int:
        """Seats held right now: the claimed ones minus lapsed holds (one small query)."""
        booking_model = apps.get_model("bookings", "Booking")
        lapsed = booking_model.objects.filter(event=self).stale_holds(now)
        return self.seats_claimed - (lapsed.aggregate(seats=models.Sum("seats"))["seats"] or 0)

    @property
    def is_free(self) -> bool:
        return self.price == 0
