"""The CRM side of Ahoum: deliveries going out, and what the receiver stored coming in.

Booking, waitlist entry and event ids here are plain integers, not foreign keys: a
notification describes a booking (or a waitlist entry) as the sender saw it (the receiver
plays a separate CRM, as in the original), and a delivery must outlive whatever happens to
the rows it describes.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ahoum.attempts import Attempted

MAX_ID = 2**63 - 1  # the largest value a PositiveBigIntegerField holds on every database


class DeliveryKind(models.TextChoices):
    NOTIFICATION = "notification", "Booking or waitlist notification to the CRM"
    FORWARD = "forward", "Received notification forwarded"


class DeliveryQuerySet(models.QuerySet):
    def for_listing(self) -> "DeliveryQuerySet":
        # The payload can be large and no list shows it.
        return self.defer("payload")


class Delivery(Attempted):
    """One JSON message to one URL, retried until it is delivered, refused or too old.

    The payload is built when the delivery is queued, inside the transaction of the change it
    describes, so later changes never alter it. `webhook_id` is the same on every attempt: the
    receiver uses it to drop duplicates. `succeeded` means delivered; `gave_up` means refused
    (a 4xx; `last_status_code` says which) or still failing after CRM_RETRY_HOURS.
    """

    kind = models.CharField(max_length=20, choices=DeliveryKind.choices)
    webhook_id = models.CharField(max_length=64, unique=True)
    target_url = models.URLField(max_length=2000)
    event_type = models.CharField(max_length=40, blank=True, help_text="e.g. booking.paid")
    booking_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    waitlist_entry_id = models.PositiveBigIntegerField(
        null=True, blank=True, db_index=True, help_text="For waitlist notifications: the entry."
    )
    sequence = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The booking's (or, for a waitlist change, the entry's) version this message "
        "describes.",
    )
    notification = models.OneToOneField(
        "CRMNotification",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="forward",
        help_text="For forwards: the received notification being passed on.",
    )
    payload = models.JSONField()

    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    retry_until = models.DateTimeField(help_text="No attempt is scheduled after this time.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="crm_delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_type or self.kind} #{self.pk} ({self.status})"


class CRMBooking(models.Model):
    """The CRM's record of one booking: the original's fields, as last notified, for review."""

    booking_id = models.PositiveBigIntegerField(unique=True)
    user_id = models.PositiveBigIntegerField(null=True, blank=True)
    user_name = models.CharField(max_length=200)
    user_email = models.EmailField(max_length=254)
    event_id = models.PositiveBigIntegerField()
    event_title = models.CharField(max_length=200, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    facilitator_id = models.PositiveBigIntegerField()

    # The latest notification applied (a stale one never overwrites these).
    type = models.CharField(max_length=40, blank=True, help_text="e.g. booking.paid")
    status = models.CharField(max_length=20, blank=True)
    payment_status = models.CharField(max_length=20, blank=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    payload = models.JSONField(help_text="The latest applied notification as received.")

    # Staff review.
    reviewed = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = "CRM booking"
        indexes = [models.Index(fields=["user_email"], name="crm_booking_email_idx")]

    def __str__(self) -> str:
        return f"CRM booking {self.booking_id} ({self.user_email})"


class CRMWaitlistEntry(models.Model):
    """The CRM's record of one waitlist entry, as last notified (`waitlist.*`), for review."""

    waitlist_entry_id = models.PositiveBigIntegerField(unique=True)
    user_id = models.PositiveBigIntegerField(null=True, blank=True)
    user_name = models.CharField(max_length=200)
    user_email = models.EmailField(max_length=254)
    event_id = models.PositiveBigIntegerField()
    event_title = models.CharField(max_length=200, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)

    # The latest notification applied (a stale one never overwrites these).
    type = models.CharField(max_length=40, blank=True, help_text="e.g. waitlist.offered")
    status = models.CharField(max_length=20, blank=True)
    seats = models.PositiveSmallIntegerField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    booking_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The booking an accepted offer became."
    )
    reason = models.CharField(max_length=255, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    payload = models.JSONField(help_text="The latest applied notification as received.")

    # Staff review.
    reviewed = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = "CRM waitlist entry"
        verbose_name_plural = "CRM waitlist entries"
        indexes = [models.Index(fields=["user_email"], name="crm_waitlist_email_idx")]

    def __str__(self) -> str:
        return f"CRM waitlist entry {self.waitlist_entry_id} ({self.user_email})"


class CRMNotification(models.Model):
    """One notification received for a CRM booking or waitlist entry (exactly one of them):
    its history, duplicates excluded."""

    crm_booking = models.ForeignKey(
        CRMBooking, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    crm_waitlist_entry = models.ForeignKey(
        CRMWaitlistEntry,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    webhook_id = models.CharField(max_length=255, blank=True)
    # `id:<webhook-id>`, or `sha256:<hash of the payload>` for a notification without one.
    dedupe_key = models.CharField(max_length=300, unique=True)
    signed = models.BooleanField(default=False, help_text="Its signature was verified.")
    type = models.CharField(max_length=40, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, blank=True)
    payment_status = models.CharField(max_length=20, blank=True)
    applied = models.BooleanField(
        help_text="False when a newer sequence was already stored (kept as history only)."
    )
    marked_paid = models.BooleanField(default=False, help_text="It marked the booking paid.")
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(crm_booking__isnull=False, crm_waitlist_entry__isnull=True)
                | Q(crm_booking__isnull=True, crm_waitlist_entry__isnull=False),
                name="crm_notification_of_one_record",
            )
        ]

    def __str__(self) -> str:
        if self.crm_waitlist_entry_id is not None:
            return f"{self.type} for CRM waitlist entry {self.crm_waitlist_entry_id}"
        return f"{self.type or 'notification'} for booking {self.crm_booking_id}"
