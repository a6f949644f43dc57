"""`read_by_pk`: the ORM's row, read through a SELECT compiled once."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.tests.factories import UserFactory
from ahoum.compiled import read_by_pk
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def fields_of(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname)
        for field in type(instance)._meta.concrete_fields
    }


def test_reads_the_same_user_as_the_orm_with_every_field_converted():
    user = UserFactory(name="Ada", last_login=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))

    with CaptureQueriesContext(connection) as queries:
        read = read_by_pk(User, user.pk)

    assert len(queries) == 1
    assert fields_of(read) == fields_of(User.objects.get(pk=user.pk))
    assert isinstance(read.date_joined, datetime) and read.date_joined.tzinfo is not None
    assert read._state.adding is False and read._state.db == "default"


def test_decimals_and_datetimes_come_back_typed_as_the_orm_gives_them():
    event = EventFactory(price=Decimal("12.50"))

    read = read_by_pk(Event, event.pk)

    assert fields_of(read) == fields_of(Event.objects.get(pk=event.pk))
    assert read.price == Decimal("12.50") and isinstance(read.price, Decimal)
    assert isinstance(read.starts_at, datetime)


def test_a_missing_row_is_none_and_each_call_reads_afresh():
    user = UserFactory(name="Before")
    assert read_by_pk(User, user.pk + 1000) is None

    User.objects.filter(pk=user.pk).update(name="After")

    assert read_by_pk(User, user.pk).name == "After"
