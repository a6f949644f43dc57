"""PostgreSQL only: the GIN index the catalogue's full-text search reads, and the words of the
events that exist. SQLite has neither (its search compares substrings, events/filters.py)."""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations

from events.models import search_vector

INDEX = GinIndex(fields=["search_vector"], name="event_search_idx")


def add(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    event = apps.get_model("events", "Event")
    schema_editor.add_index(event, INDEX)
    event.objects.using(schema_editor.connection.alias).update(search_vector=search_vector())


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("events", "Event"), INDEX)


class Migration(migrations.Migration):
    dependencies = [("events", "0004_catalogue_indexes_search")]

    operations = [migrations.RunPython(add, remove)]
