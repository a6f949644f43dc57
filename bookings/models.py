from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


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
        return self.select_related("event")


class Booking(models.Model):
    """A person's seat at an event. Fields change only through `bookings.services`."""

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
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    # Incremented by every transition; CRM notifications carry it so receivers drop stale ones.
    version = models.PositiveIntegerField(default=1)

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

    def holds_seat(self, now=None) -> bool:
        if self.status == BookingStatus.CONFIRMED:
            return True
        now = now or timezone.now()
        return self.status == BookingStatus.PENDING and self.hold_expires_at > now


class BookingAudit(models.Model):
    """One row per booking transition: who (or the system) changed what, when and why."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="audit")
    version = models.PositiveIntegerField()
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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["booking", "version"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "version"], name="audit_one_row_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"
