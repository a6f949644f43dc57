"""Seats under real concurrency: separate database connections booking at the same instant."""

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from bookings.models import Booking
from conftest import client_for
from events.tests.factories import EventFactory

ATTEMPTS = 50
CAPACITY = 5


def rush(event_id: int, clients) -> Counter:
    """Every client POSTs /bookings/ at once, each thread on its own database connection."""
    start = threading.Barrier(len(clients))
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def attempt(client):
        try:
            start.wait(timeout=30)
            response = client.post("/bookings/", {"event_id": event_id}, format="json")
            code = response.json().get("code", "") if response.status_code != 201 else ""
            with lock:
                outcomes[(response.status_code, code)] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a booking attempt hung"
    return outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("price", [Decimal("0"), Decimal("30")], ids=["free", "paid"])
def test_booking_last_seats_under_concurrency_confirms_exactly_capacity(price):
    event = EventFactory(capacity=CAPACITY, price=price)
    clients = [client_for(UserFactory()) for _ in range(ATTEMPTS)]

    outcomes = rush(event.pk, clients)

    assert outcomes == {(201, ""): CAPACITY, (409, "sold_out"): ATTEMPTS - CAPACITY}
    assert Booking.objects.filter(event=event).count() == CAPACITY
    assert Booking.objects.filter(event=event).holding_seats().count() == CAPACITY
    event.refresh_from_db()
    assert event.seats_claimed == CAPACITY


@pytest.mark.django_db(transaction=True)
def test_same_user_double_submit_gets_one_booking():
    event = EventFactory(capacity=CAPACITY)
    person = UserFactory()
    clients = [client_for(person) for _ in range(10)]

    outcomes = rush(event.pk, clients)

    assert outcomes == {(201, ""): 1, (409, "already_booked"): 9}
    assert Booking.objects.filter(event=event, user=person).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lock_wait_is_bounded_and_answers_503_try_again(settings):
    """Row locks need PostgreSQL: SQLite serialises whole transactions instead."""
    settings.LOCK_TIMEOUT_MS = 200
    event = EventFactory()
    client = client_for(UserFactory())
    locked = threading.Event()
    release = threading.Event()

    def hold_event_lock():
        from django.db import transaction

        from events.models import Event

        try:
            with transaction.atomic():
                Event.objects.select_for_update().get(pk=event.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_event_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        response = client.post("/bookings/", {"event_id": event.pk}, format="json")
    finally:
        release.set()
        holder.join(timeout=30)

    assert response.status_code == 503
    assert response.json()["code"] == "busy"
    assert response["Retry-After"] == "1"
    assert not Booking.objects.exists()
