"""PostgreSQL only: the GIN index the catalogue's full-text search reads, and the words of the
events that exist. SQLite has neither (its search compares substrings, events/filters.py)."""

import functools
import operator

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEX = GinIndex(fields=["search_vector"], name="event_search_idx")
# As events.models.search_vector() was when this migration was written.
WEIGHTS = {"title": "A", "type": "A", "location": "B", "description": "C"}


def search_vector() -> SearchVector:
    vectors = [SearchVector(name, weight=w, config="english") for name, w in WEIGHTS.items()]
    return functools.reduce(operator.add, vectors)


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
