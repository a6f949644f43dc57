"""Serializer fields that take exactly the JSON type the OpenAPI schema documents.

DRF is lenient: a CharField takes 42 and stores "42", an IntegerField takes "42". A client
that sends the wrong type has a bug, and the schema promises a 400 for it, so input
serializers use these fields (ModelSerializers through `StrictTypesMixin`).
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone
from rest_framework import serializers
from rest_framework.settings import api_settings


def _refuse_unless(field: serializers.Field, data, *types: type) -> None:
    if isinstance(data, bool) or not isinstance(data, types):
        field.fail("invalid_type")


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid_type": "Must be a string."}

    def to_internal_value(self, data):
        _refuse_unless(self, data, str)
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    default_error_messages = {"invalid_type": "Must be a string."}

    def to_internal_value(self, data):
        _refuse_unless(self, data, str)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid_type": "Must be a whole number."}

    def to_internal_value(self, data):
        _refuse_unless(self, data, int)
        return super().to_internal_value(data)


class StrictDecimalField(serializers.DecimalField):
    """Money is a string ("30.00") as the schema says; a rating (not coerced) is a number."""

    default_error_messages = {"invalid_type": "Wrong type for this number."}

    def to_internal_value(self, data):
        # DRF's own rule for how the field is written out, which the schema documents.
        if getattr(self, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING):
            _refuse_unless(self, data, str)
        else:
            _refuse_unless(self, data, int, float)
        return super().to_internal_value(data)


class StrictTypesMixin:
    """For ModelSerializers: model fields map to the strict serializer fields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.EmailField: StrictEmailField,
        models.PositiveIntegerField: StrictIntegerField,
        models.IntegerField: StrictIntegerField,
        models.DecimalField: StrictDecimalField,
    }


# Hand-written representations (the hot read paths, bench/README.md) build their dicts with
# these, which write values exactly as DRF's fields do; each such serializer has a test that
# compares its output with DRF's generic one.

CENTS = Decimal("0.01")


def iso_datetime(value) -> str | None:
    """As DRF's DateTimeField writes it: ISO 8601 in the current time zone, UTC as `Z`."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def money(value: Decimal) -> str:
    """As DRF's DecimalField(decimal_places=2) writes it: a string with two decimals."""
    return format(value.quantize(CENTS), "f")
