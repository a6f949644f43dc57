from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ahoum.attempts import Attempted


class BookingStatus(models.TextChoices):
    PENDING = "pending", "Pending payment"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class PaymentStatus(models.TextChoices):
    UNPAID = "unpaid", "Unpaid"
    PAID = "paid", "Paid"
    REFUNDED = "refunded", "Refunded"
    FREE = "free", "Free (no payment needed)"


ACTIVE_STATUSES = [BookingStatus.PENDING, BookingStatus.CONFIRMED]


class BookingQuerySet(models.QuerySet):
    def active(self) -> "BookingQuerySet":
        return self.filter(status__in=ACTIVE_STATUSES)

    def holding_seats(self, now=None) -> "BookingQuerySet":
        """Bookings that occupy a seat: confirmed, or pending with an unexpired hold."""
        return self.filter(
            Q(status=BookingStatus.CONFIRMED)
            | Q(status=BookingStatus.PENDING, hold_expires_at__gt=now or timezone.now())
        )

    def stale_holds(self, now=None) -> "BookingQuerySet":
        return self.filter(status=BookingStatus.PENDING, hold_expires_at__lte=now or timezone.now())

    def for_listing(self) -> "BookingQuerySet":
        return self.select_related("event").prefetch_related("refunds", "attendees")

    def registration_summary(self) -> dict:
        """Counts and seats by status and the money kept (paid and confirmed), in one query."""
        statuses = ("pending", "confirmed", "cancelled", "expired")
        by_status = {status: models.Count("pk", filter=Q(status=status)) for status in statuses}
        seats_by_status = {
            f"seats_{status}": Coalesce(models.Sum("seats", filter=Q(status=status)), 0)
            for status in statuses
        }
        return self.aggregate(
            **by_status,
            **seats_by_status,
            refunded=models.Count("pk", filter=Q(payment_status="refunded")),
            revenue=Coalesce(
                models.Sum("amount", filter=Q(payment_status="paid", status="confirmed")),
                Value(Decimal("0.00")),
                output_field=models.DecimalField(max_digits=12, decimal_places=2),
            ),
        )


class Booking(models.Model):
    """A person's seats at an event, one `Attendee` each. Fields change only through
    `bookings.services`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    event = models.ForeignKey("events.Event", on_delete=models.PROTECT, related_name="bookings")
    # Copied from the event at booking time (the original's contract): who was paid.
    facilitator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="facilitated_bookings"
    )
    status = models.CharField(max_length=20, choices=BookingStatus.choices)
    payment_status = models.CharField(max_length=20, choices=PaymentStatus.choices)
    # The seats the booking holds: its attendees not cancelled. A seat cancelled on its own
    # lowers it (and `amount`, by the seat's share); a booking cancelled whole keeps the seats
    # it held then. It is what the event's `seats_claimed` counts for an active booking.
    seats = models.PositiveSmallIntegerField(default=1)
    # The price of `seats` seats: the event's price per seat at booking time times `seats`.
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    # Incremented by every transition; CRM notifications carry it so receivers drop stale ones.
    version = models.PositiveIntegerField(default=1)

    # Stripe Checkout (empty for free events and when payments are not configured).
    checkout_session_id = models.CharField(max_length=255, blank=True, db_index=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "event"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="booking_one_active_per_user_event",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="booking_amount_not_negative"),
            models.CheckConstraint(condition=Q(seats__gte=1), name="booking_seats_positive"),
        ]
        indexes = [
            # Seat counting: the active bookings of one event, with their hold expiry.
            models.Index(
                fields=["event", "status", "hold_expires_at"], name="booking_event_seats_idx"
            ),
            models.Index(fields=["user", "-created_at"], name="booking_user_recent_idx"),
            models.Index(
                fields=["hold_expires_at"],
                condition=Q(status=BookingStatus.PENDING),
                name="booking_pending_hold_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Booking #{self.pk} ({self.status})"

    @property
    def seat_price(self):
        """One seat's share of `amount` (exact: `amount` is the price per seat times `seats`)."""
        return self.amount / self.seats

    def holds_seat(self, now=None) -> bool:
        if self.status == BookingStatus.CONFIRMED:
            return True
        now = now or timezone.now()
        return self.status == BookingStatus.PENDING and self.hold_expires_at > now


class AttendeeStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"


class Attendee(models.Model):
    """The person in one seat of a booking; their seat can be cancelled on its own.

    The API shows an active attendee with the booking's status (pending, confirmed,
    cancelled, expired) and a cancelled one as `cancelled`.
    """

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="attendees")
    position = models.PositiveSmallIntegerField(help_text="1 is the first seat.")
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254, blank=True)
    status = models.CharField(
        max_length=20, choices=AttendeeStatus.choices, default=AttendeeStatus.ACTIVE
    )
    # Whether this person is the one who booked (their seat's emails are the booker's own).
    is_booker = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["booking", "position"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "position"], name="attendee_one_per_seat")
        ]

    def __str__(self) -> str:
        return f"{self.name} (seat {self.position} of booking #{self.booking_id})"

    def status_in(self, booking: Booking) -> str:
        """What the API shows for this seat of `booking`."""
        if self.status == AttendeeStatus.CANCELLED:
            return AttendeeStatus.CANCELLED
        return booking.status


class BookingAudit(models.Model):
    """One row per booking transition: who (or the system) changed what, when and why."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="audit")
    version = models.PositiveIntegerField()
    change = models.CharField(max_length=40, default="", help_text="e.g. booking.paid")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    from_payment_status = models.CharField(max_length=20, blank=True)
    to_payment_status = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text="Empty when the system made the change (a webhook, an expiry job).",
    )
    reason = models.CharField(max_length=255)
    # The seat a `booking.attendee_cancelled` change is about; empty for whole-booking changes.
    attendee = models.ForeignKey(
        Attendee, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["booking", "version"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "version"], name="audit_one_row_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class Payment(models.Model):
    """Money received through Stripe Checkout for a booking: one row per paid session.

    The first payment of an unpaid booking settles it (`settles_booking`); any other (a second
    session paid after a late webhook, or a session paid after staff or the CRM marked the
    booking paid) is refunded in full and flagged for staff. The unique session id makes
    Stripe's repeated or overlapping events (completed, async_payment_succeeded) count once.
    """

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payments")
    checkout_session_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    paid_at = models.DateTimeField(help_text="When Stripe completed the payment.")
    settles_booking = models.BooleanField(
        help_text="False for a payment the booking did not need: it is refunded in full."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Payment {self.checkout_session_id} for booking #{self.booking_id}"


class Refund(Attempted):
    """Money going back for one payment of a booking; attempted until Stripe confirms it.

    `payment` is empty when the booking was paid outside Stripe (staff, the CRM): there is
    nothing to refund automatically and the refund gives up to staff at once.
    """

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    # A seat's share, when one seat of a group was cancelled: the booking stays paid.
    attendee = models.ForeignKey(
        Attendee, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=255)
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="refund_due_idx")]

    def __str__(self) -> str:
        return f"Refund of booking #{self.booking_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        # The same key until an attempt ends with a known failure: a repeat of an attempt whose
        # outcome is unknown gets Stripe's stored answer, never a second refund.
        # https://docs.stripe.com/api/idempotent_requests
        return f"ahoum-refund-{self.pk}-{self.failures + 1}"


class CheckoutSessionExpiry(Attempted):
    """A Checkout Session that must no longer be paid (its booking was paid another way or
    cancelled), attempted until Stripe has expired it.

    Written in the transaction of that change, with its first attempt's task. Stripe also
    expires a session at its `expires_at`, and a payment still made on it is refunded
    (`services.record_checkout_payment`): this closes that window early.
    """

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="+")
    checkout_session_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "checkout session expiries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="session_expiry_due_idx")
        ]

    def __str__(self) -> str:
        return f"Expiry of {self.checkout_session_id} ({self.status})"


class StripeEventReceipt(Attempted):
    """A verified Stripe event (stored by dj-stripe) to apply to its booking, until it is.

    Written by the webhook's receiver in dj-stripe's own transaction, with its first
    attempt's task: once Stripe has its 200, the event is applied (or staff see why not) even
    if that task fails (a lock held too long, the database gone) or its worker dies.
    Applying is idempotent, so a repeat changes nothing.
    """

    stripe_event_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="stripe_event_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.stripe_event_id} ({self.status})"


class PaymentIssueKind(models.TextChoices):
    AMOUNT_MISMATCH = "amount_mismatch", "Paid amount differs from the booking"
    UNKNOWN_BOOKING = "unknown_booking", "Payment for an unknown booking"
    REFUND_FAILING = "refund_failing", "Refund failed: refund by hand"
    DUPLICATE_PAYMENT = "duplicate_payment", "Paid twice: the extra payment is refunded"
    OVERBOOKED = "overbooked", "Paid in time but confirmed over capacity"
    STRIPE_EVENT_FAILED = "stripe_event_failed", "A Stripe event could not be applied"


class PaymentIssue(models.Model):
    """Something about a payment that staff must look at; never resolved automatically."""

    booking = models.ForeignKey(
        Booking, on_delete=models.PROTECT, null=True, blank=True, related_name="payment_issues"
    )
    kind = models.CharField(max_length=30, choices=PaymentIssueKind.choices)
    detail = models.TextField()
    stripe_object_id = models.CharField(max_length=255, blank=True)
    resolved = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["resolved", "-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (booking #{self.booking_id})"


class EmailRecipient(models.TextChoices):
    ATTENDEE = "attendee", "Attendee (the person who booked)"
    FACILITATOR = "facilitator", "Facilitator"
    GUEST = "guest", "Guest (an attendee of a group booking other than the booker)"


class EmailKind(models.TextChoices):
    CONFIRMED = "confirmed", "Booking confirmed (with calendar invite)"
    CANCELLED = "cancelled", "Booking cancelled"
    REFUNDED = "refunded", "Refund issued"
    EVENT_CANCELLED = "event_cancelled", "Event cancelled by the facilitator"
    HOLD_EXPIRED = "hold_expired", "Hold expired without payment"
    NEW_REGISTRATION = "new_registration", "New confirmed registration (to the facilitator)"
    SEAT_CANCELLED = "seat_cancelled", "One seat of a group booking cancelled"


class BookingEmail(Attempted):
    """One email owed for one booking transition to one recipient; sent at most once.

    Written inside the transaction of the change it tells about (bookings/notifications.py),
    so it exists exactly when that change committed. The unique constraint is the guarantee:
    one row per (booking, audit version, recipient kind), and a send attempt is claimed on the
    row before any mail leaves.
    """

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="emails")
    audit_version = models.PositiveIntegerField(
        help_text="The version of the BookingAudit row (the transition) this email tells about."
    )
    recipient_kind = models.CharField(max_length=20, choices=EmailRecipient.choices)
    # The guest a `guest` email goes to (their own invite); empty for the booker and facilitator.
    attendee = models.ForeignKey(
        Attendee, on_delete=models.CASCADE, null=True, blank=True, related_name="emails"
    )
    kind = models.CharField(max_length=30, choices=EmailKind.choices)
    to_email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["booking", "audit_version", "recipient_kind"],
                condition=Q(attendee__isnull=True),
                name="booking_email_once_per_transition",
            ),
            models.UniqueConstraint(
                fields=["booking", "audit_version", "attendee"],
                condition=Q(attendee__isnull=False),
                name="guest_email_once_per_transition",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="booking_email_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient_kind} (booking #{self.booking_id})"


class WaitlistStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    OFFERED = "offered", "Offered seats"
    ACCEPTED = "accepted", "Accepted (booked)"
    EXPIRED = "expired", "Expired"
    LEFT = "left", "Left (or declined)"


WAITLIST_OPEN_STATUSES = [WaitlistStatus.WAITING, WaitlistStatus.OFFERED]


class WaitlistEntryQuerySet(models.QuerySet):
    def open(self) -> "WaitlistEntryQuerySet":
        return self.filter(status__in=WAITLIST_OPEN_STATUSES)

    def queue(self, event) -> "WaitlistEntryQuerySet":
        """The event's waiting entries, next first (the order people joined)."""
        return self.filter(event=event, status=WaitlistStatus.WAITING).order_by("created_at", "id")

    def with_positions(self) -> "WaitlistEntryQuerySet":
        """Annotate `queue_position`: 1 for the next person offered seats, null once not
        waiting. A subquery per row over its event's queue (the queue index), so a list page
        costs one query whatever its size."""
        earlier = (
            WaitlistEntry.objects.filter(event=OuterRef("event"), status=WaitlistStatus.WAITING)
            .filter(
                Q(created_at__lt=OuterRef("created_at"))
                | Q(created_at=OuterRef("created_at"), id__lt=OuterRef("id"))
            )
            .order_by()
            .values("event")
            .annotate(count=models.Count("pk"))
            .values("count")
        )
        return self.annotate(
            queue_position=models.Case(
                models.When(
                    status=WaitlistStatus.WAITING,
                    then=Coalesce(models.Subquery(earlier, output_field=models.IntegerField()), 0)
                    + 1,
                ),
                default=None,
                output_field=models.IntegerField(),
            )
        )

    def stale_offers(self, now=None) -> "WaitlistEntryQuerySet":
        return self.filter(
            status=WaitlistStatus.OFFERED, offer_expires_at__lte=now or timezone.now()
        )


class WaitlistEntry(models.Model):
    """A person waiting for `seats` seats of a sold-out event; changed by
    `bookings.services.waitlist` only.

    Waiting entries' seats are counted on the event (`Event.seats_waiting`): freed seats go to
    them before anyone else can book. An offer reserves its seats in the event's
    `seats_claimed` until it is accepted (they become the booking's), declined, left or lapsed.
    """

    event = models.ForeignKey("events.Event", on_delete=models.PROTECT, related_name="waitlist")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="waitlist_entries"
    )
    seats = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=20, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING
    )
    # Incremented by every change; CRM notifications carry it as their sequence.
    version = models.PositiveIntegerField(default=1)
    booking = models.ForeignKey(
        Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The booking an accepted offer became.",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    offered_at = models.DateTimeField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Accepted, expired or left.")
    reason = models.CharField(max_length=255, blank=True, help_text="Why it ended.")

    objects = WaitlistEntryQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "waitlist entries"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "event"],
                condition=Q(status__in=WAITLIST_OPEN_STATUSES),
                name="waitlist_one_open_per_user_event",
            ),
            models.CheckConstraint(condition=Q(seats__gte=1), name="waitlist_seats_positive"),
        ]
        indexes = [
            # The queue of an event, in order, and its counts.
            models.Index(fields=["event", "status", "created_at", "id"], name="waitlist_queue_idx"),
            models.Index(
                fields=["offer_expires_at"],
                condition=Q(status=WaitlistStatus.OFFERED),
                name="waitlist_offer_expiry_idx",
            ),
            models.Index(fields=["user", "-created_at"], name="waitlist_user_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"Waitlist #{self.pk} ({self.status}, {self.seats} seats)"

    def offer_open(self, now=None) -> bool:
        return self.status == WaitlistStatus.OFFERED and self.offer_expires_at > (
            now or timezone.now()
        )


class WaitlistEmailKind(models.TextChoices):
    JOINED = "joined", "Joined the waitlist (with their place)"
    OFFERED = "offered", "Seats offered (how to accept, until when)"
    EXPIRED = "expired", "Offer expired, or the event cancelled"


class WaitlistEmail(Attempted):
    """One email owed for one waitlist change, to the person waiting; sent at most once.

    Written inside the change's transaction (`bookings.notifications.queue_waitlist_emails`),
    so it exists exactly when that change committed. Every change raises the entry's version,
    so the unique constraint makes it one email per change; a send attempt is claimed on the
    row before any mail leaves.
    """

    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="emails")
    entry_version = models.PositiveIntegerField(
        help_text="The entry's version after the change this email tells about."
    )
    kind = models.CharField(max_length=20, choices=WaitlistEmailKind.choices)
    to_email = models.EmailField(max_length=254)
    position = models.PositiveIntegerField(
        null=True, blank=True, help_text="Joined: their place in the queue when they joined."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["entry", "entry_version"], name="waitlist_email_once_per_change"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="waitlist_email_due_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (waitlist entry #{self.entry_id})"
