"""Existing refunds and emails onto the shared attempt states (ahoum/attempts.py).

Refunds: `failed` (a retry scheduled) becomes `pending` with its failures counted. A refund
left `pending` after an attempt was claimed (the process died mid-call: the bug this change
fixes) becomes `running` with a lease that ended long ago, so `manage.py sweep` takes it over
and repeats that attempt; one never tried is due now. Stripe payments already recorded on
bookings become `Payment` rows, and their refunds point to them.

Emails: `sending` is `running`, `sent` is `succeeded`, `failed` is `pending`, and
`unconfirmed` (the outcome of an attempt is unknown; at most once) is `gave_up`.
"""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone


def forwards(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    Payment = apps.get_model("bookings", "Payment")
    Refund = apps.get_model("bookings", "Refund")
    BookingEmail = apps.get_model("bookings", "BookingEmail")
    now = timezone.now()
    lapsed = now - timedelta(days=1)

    for booking in Booking.objects.exclude(payment_intent_id="").iterator():
        Payment.objects.get_or_create(
            checkout_session_id=booking.checkout_session_id or f"unknown-{booking.pk}",
            defaults={
                "booking": booking,
                "payment_intent_id": booking.payment_intent_id,
                "amount": booking.amount,
                "currency": booking.currency,
                "paid_at": booking.paid_at or booking.created_at,
                "settles_booking": True,
                "created_at": booking.paid_at or booking.created_at,
            },
        )
    for payment in Payment.objects.all().iterator():
        Refund.objects.filter(booking_id=payment.booking_id, payment__isnull=True).update(
            payment=payment
        )

    for refund in Refund.objects.exclude(status="succeeded").iterator():
        if refund.status == "failed":
            refund.status, refund.failures = "pending", refund.attempts
        elif refund.status == "gave_up":
            refund.failures, refund.gave_up_at = refund.attempts, refund.updated_at
        elif refund.attempts:  # claimed, never recorded
            refund.status, refund.failures = "running", refund.attempts - 1
            refund.next_attempt_at = lapsed
        refund.next_attempt_at = refund.next_attempt_at or lapsed
        refund.save()

    BookingEmail.objects.filter(status="sending").update(status="running")
    BookingEmail.objects.filter(status="sent").update(status="succeeded")
    for email in BookingEmail.objects.filter(status__in=["failed", "gave_up", "unconfirmed"]):
        email.failures = email.attempts
        if email.status == "failed":
            email.status = "pending"
        else:
            if email.status == "unconfirmed":
                email.last_error = "an attempt never finished; it may have been sent (not resent)"
            email.status, email.gave_up_at = "gave_up", email.updated_at
        email.save()


class Migration(migrations.Migration):
    dependencies = [("bookings", "0004_attempts")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
