"""Existing deliveries onto the shared attempt states (ahoum/attempts.py).

`delivered` is `succeeded`; `failed` (refused by the receiver) is `gave_up`, as running out
of retries already was; failures are counted from the attempts made.
"""

from django.db import migrations
from django.db.models import F


def forwards(apps, schema_editor):
    Delivery = apps.get_model("crm", "Delivery")
    Delivery.objects.filter(status="delivered").update(status="succeeded")
    Delivery.objects.filter(status="failed").update(status="gave_up", gave_up_at=F("updated_at"))
    Delivery.objects.exclude(status="succeeded").update(failures=F("attempts"))


class Migration(migrations.Migration):
    dependencies = [("crm", "0002_attempts")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
