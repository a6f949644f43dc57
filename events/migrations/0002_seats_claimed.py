from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def count_claimed_seats(apps, schema_editor):
    """Existing events start with the number of their pending or confirmed bookings."""
    Event = apps.get_model("events", "Event")
    Booking = apps.get_model("bookings", "Booking")
    active = (
        Booking.objects.filter(event=OuterRef("pk"), status__in=["pending", "confirmed"])
        .order_by()
        .values("event")
        .annotate(count=Count("pk"))
        .values("count")
    )
    Event.objects.update(
        seats_claimed=Coalesce(Subquery(active, output_field=models.IntegerField()), 0)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        ("bookings", "0003_emails"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="seats_claimed",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_claimed_seats, migrations.RunPython.noop, elidable=True),
    ]
