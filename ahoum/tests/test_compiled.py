"""`ahoum.compiled`: the ORM's own reads and inserts, compiled once, giving what it gives."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory
from ahoum.compiled import insert, read_by_pk, update_by_pk
from bookings.models import Booking, BookingAudit
from crm.models import Delivery
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


def new_booking(event, **fields) -> Booking:
    values = {
        "user": UserFactory(),
        "event": event,
        "facilitator_id": event.facilitator_id,
        "status": "pending",
        "payment_status": "unpaid",
        "amount": Decimal("19.99"),
        "currency": "EUR",
        "hold_expires_at": datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "created_at": datetime(2030, 5, 6, 6, 0, tzinfo=UTC),
    }
    return Booking(**(values | fields))


def test_insert_writes_the_row_save_would_and_marks_the_instance_saved():
    event = EventFactory()
    saved = new_booking(event)
    saved.save()
    inserted = new_booking(event)

    with CaptureQueriesContext(connection) as queries:
        assert insert(inserted) is inserted

    assert len(queries) == 1 and queries[0]["sql"].upper().startswith("INSERT")
    assert inserted.pk and inserted.pk != saved.pk
    assert inserted._state.adding is False and inserted._state.db == "default"
    assert inserted.updated_at is not None  # auto_now, as save() sets it
    ignore = {"id", "user_id", "updated_at"}
    written = fields_of(Booking.objects.get(pk=inserted.pk))
    assert {k: v for k, v in written.items() if k not in ignore} == {
        k: v for k, v in fields_of(Booking.objects.get(pk=saved.pk)).items() if k not in ignore
    }
    assert written["updated_at"] == inserted.updated_at
    audit = BookingAudit(booking=inserted, version=1, change="booking.created", reason="x")
    insert(audit)
    assert BookingAudit.objects.get(pk=audit.pk).booking_id == inserted.pk


def test_insert_raises_integrity_error_for_a_violated_constraint_and_writes_nothing():
    event = EventFactory()
    first = insert(new_booking(event))

    with pytest.raises(IntegrityError), transaction.atomic():
        insert(new_booking(event, user=first.user))  # one active booking per person and event

    assert Booking.objects.filter(event=event).count() == 1


def test_insert_refuses_an_expression_as_a_value():
    booking = new_booking(EventFactory(), version=F("version") + 1)

    with pytest.raises(TypeError):
        insert(booking)


def test_update_by_pk_changes_the_row_and_returns_it_as_the_orm_reads_it():
    event = EventFactory(price=Decimal("12.50"))
    before = event.seats_claimed

    with CaptureQueriesContext(connection) as queries:
        updated = update_by_pk(Event, "seats_claimed = seats_claimed + 1", event.pk)

    assert len(queries) == 1
    assert updated.seats_claimed == before + 1
    assert fields_of(updated) == fields_of(Event.objects.get(pk=event.pk))
    assert isinstance(updated.price, Decimal) and updated.starts_at > timezone.now() - timedelta(
        days=3650
    )
    assert update_by_pk(Event, "seats_claimed = seats_claimed + 1", event.pk + 1000) is None


@pytest.mark.parametrize("model", [Booking, BookingAudit, Delivery])
def test_no_save_signal_listens_to_the_models_inserted_without_save(model):
    """`bookings.services` and `crm.services` insert these with `insert()`, which sends no
    save signals.

    A receiver added for them would silently never run: listen to `booking_changed` instead,
    or save them with `save()`.
    """
    for signal in (pre_save, post_save):
        assert not signal.has_listeners(model), f"{signal} has a receiver for {model.__name__}"
