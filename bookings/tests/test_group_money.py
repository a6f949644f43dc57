"""The money of group bookings: one Checkout line item per booking, a seat's share refunded.

Through the API and the real `stripe` library against the fake Stripe on 127.0.0.1, as
test_payments does; webhooks go through dj-stripe's view with a real signature and the real
`db_worker` applies them and makes the refunds.
"""

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
import time_machine
from django.db import connection

from accounts.tests.factories import UserFactory
from ahoum.attempts import AttemptStatus
from bookings import services
from bookings.models import (
    Attendee,
    Booking,
    Payment,
    PaymentIssue,
    Refund,
    StripeEventReceipt,
)
from bookings.services import event_cancellation
from conftest import client_for, run_tasks
from events.models import Event
from events.tests.factories import EventFactory
from fakes.stripe_api import TEST_SECRET_KEY

PRICE = Decimal("49.50")  # 4950 cents a seat
CREATE_SESSION = ("POST", "/v1/checkout/sessions")


@pytest.fixture
def event(db):
    return EventFactory(price=PRICE, currency="EUR", capacity=5, title="Sound Bath")


def book(user, event, seats: int, **extra) -> dict:
    response = client_for(user).post(
        "/bookings/", {"event_id": event.pk, "seats": seats, **extra}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def cancel_seat(user, booking_id: int, attendee_id: int):
    return client_for(user).post(f"/bookings/{booking_id}/attendees/{attendee_id}/cancel")


def deliver(stripe_webhooks, stripe_on, event_type: str, data_object: dict) -> None:
    """Stripe sends the event; the worker applies it (and does what it owes), without error."""
    stripe_event = stripe_on.event(event_type, data_object)
    assert stripe_webhooks.send(stripe_event).status_code == 200
    run_tasks()
    receipt = StripeEventReceipt.objects.get(stripe_event_id=stripe_event["id"])
    assert receipt.status == AttemptStatus.SUCCEEDED, receipt.last_error


def pay(stripe_webhooks, stripe_on, session_id: str) -> None:
    """The customer pays the session; Stripe tells us; the worker applies it."""
    deliver(
        stripe_webhooks, stripe_on, "checkout.session.completed", stripe_on.pay_session(session_id)
    )


def session_creations(stripe_on) -> list:
    return [call for call in stripe_on.requests if (call.method, call.path) == CREATE_SESSION]


def refund_calls(stripe_on) -> list:
    return stripe_on.calls("POST", "/v1/refunds")


def seats_left(event) -> int:
    return client_for(UserFactory()).get(f"/events/{event.pk}").json()["seats_left"]


def claimed(event) -> int:
    return Event.objects.values_list("seats_claimed", flat=True).get(pk=event.pk)


def assert_counter_matches_bookings() -> None:
    """The counter the services kept equals a recount of the active bookings' seats."""
    kept = dict(Event.objects.values_list("pk", "seats_claimed"))
    Event.objects.recount_claimed_seats()
    assert dict(Event.objects.values_list("pk", "seats_claimed")) == kept


@pytest.fixture
def paid_group(stripe_webhooks, stripe_on, user, event) -> dict:
    """A 3-seat booking of `user`, paid through Checkout and confirmed: the API's body."""
    body = book(user, event, 3, attendees=[{"name": "Ana", "email": "ana@example.com"}])
    pay(stripe_webhooks, stripe_on, body["checkout_session_id"])
    mine = client_for(user).get(f"/bookings/{body['id']}").json()
    assert (mine["status"], mine["payment_status"], mine["seats"]) == ("confirmed", "paid", 3)
    return mine


# --- checkout -------------------------------------------------------------------------------


def test_a_group_is_one_line_item_of_seats_times_the_seat_price_and_paying_confirms_it(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event, 3)

    assert (body["seats"], body["amount"], body["currency"]) == (3, "148.50", "EUR")
    assert (body["status"], body["payment_status"]) == ("pending", "unpaid")
    (call,) = stripe_on.calls("POST", "/v1/checkout/sessions")
    (item,) = call.params["line_items"]
    assert item["quantity"] == "3"
    assert item["price_data"]["unit_amount"] == "4950"
    assert item["price_data"]["currency"] == "eur"
    assert call.idempotency_key.endswith("-3")
    session = stripe.checkout.Session.retrieve(body["checkout_session_id"])
    assert session.amount_total == 14850
    booking = Booking.objects.get(pk=body["id"])
    assert (booking.amount, booking.seat_price) == (Decimal("148.50"), PRICE)

    pay(stripe_webhooks, stripe_on, body["checkout_session_id"])

    mine = client_for(user).get(f"/bookings/{body['id']}").json()
    assert (mine["status"], mine["payment_status"], mine["seats"]) == ("confirmed", "paid", 3)
    assert mine["amount"] == "148.50"
    assert [attendee["status"] for attendee in mine["attendees"]] == ["confirmed"] * 3
    payment = Payment.objects.get(booking_id=body["id"])
    assert (payment.amount, payment.settles_booking) == (Decimal("148.50"), True)
    assert claimed(event) == 3
    assert not PaymentIssue.objects.exists()


# --- one seat of a paid booking -------------------------------------------------------------


def test_cancelling_one_paid_seat_refunds_exactly_its_share_once(
    paid_group, stripe_webhooks, stripe_on, user, event, django_capture_on_commit_callbacks
):
    assert seats_left(event) == 2  # the catalogue page is cached now
    seat = paid_group["attendees"][1]

    # The commit's callbacks run (the test's transaction never commits): the page is retired.
    with django_capture_on_commit_callbacks(execute=True):
        response = cancel_seat(user, paid_group["id"], seat["id"])

    # The request records the seat cancelled and its share owed; the worker calls Stripe.
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["payment_status"]) == ("confirmed", "paid")
    assert (body["seats"], body["amount"], body["refund_status"]) == (2, "99.00", "pending")
    assert [attendee["status"] for attendee in body["attendees"]] == [
        "confirmed",
        "cancelled",
        "confirmed",
    ]
    assert not refund_calls(stripe_on)
    refund = Refund.objects.get()
    assert (refund.amount, refund.currency, refund.attendee_id) == (PRICE, "EUR", seat["id"])
    assert refund.payment == Payment.objects.get(booking_id=paid_group["id"])

    run_tasks()

    booking = Booking.objects.get(pk=paid_group["id"])
    (call,) = refund_calls(stripe_on)
    assert call.params["amount"] == "4950"
    assert call.params["payment_intent"] == booking.payment_intent_id
    assert call.idempotency_key == f"ahoum-refund-{refund.pk}-1"
    refund.refresh_from_db()
    assert refund.status == AttemptStatus.SUCCEEDED
    assert refund.stripe_refund_id.startswith("re_")
    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    assert (charge["amount"], charge["amount_refunded"]) == (14850, 4950)

    run_tasks()
    assert len(refund_calls(stripe_on)) == 1

    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert (booking.seats, booking.amount) == (2, Decimal("99.00"))
    assert Attendee.objects.get(pk=seat["id"]).status == "cancelled"
    assert claimed(event) == 2
    assert seats_left(event) == 3
    mine = client_for(user).get(f"/bookings/{paid_group['id']}").json()
    assert (mine["seats"], mine["amount"], mine["refund_status"]) == (2, "99.00", "succeeded")
    assert [attendee["status"] for attendee in mine["attendees"]][1] == "cancelled"

    # Stripe's charge.refunded for that partial refund is our own seat's: nothing to flag.
    version = booking.version
    deliver(stripe_webhooks, stripe_on, "charge.refunded", charge)

    booking.refresh_from_db()
    assert not PaymentIssue.objects.exists()
    assert (booking.version, booking.payment_status, booking.seats) == (version, "paid", 2)
    assert len(refund_calls(stripe_on)) == 1


def test_a_partial_refund_beyond_our_seat_refunds_is_flagged(
    paid_group, stripe_webhooks, stripe_on, user
):
    """The counterpart of the above: money refunded in Stripe that no seat accounts for."""
    cancel_seat(user, paid_group["id"], paid_group["attendees"][2]["id"])
    run_tasks()
    booking = Booking.objects.get(pk=paid_group["id"])
    stripe.Refund.create(
        payment_intent=booking.payment_intent_id, amount=100, api_key=TEST_SECRET_KEY
    )
    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    assert charge["amount_refunded"] == 5050

    deliver(stripe_webhooks, stripe_on, "charge.refunded", charge)

    issue = PaymentIssue.objects.get()
    assert (issue.kind, issue.booking_id) == ("amount_mismatch", booking.pk)
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status, booking.seats) == ("confirmed", "paid", 2)


def test_cancelling_the_rest_after_a_seat_refunds_exactly_the_remaining_seats(
    paid_group, stripe_webhooks, stripe_on, user, event
):
    cancel_seat(user, paid_group["id"], paid_group["attendees"][0]["id"])
    run_tasks()

    response = client_for(user).post(f"/bookings/{paid_group['id']}/cancel")
    assert response.status_code == 200, response.json()
    assert claimed(event) == 0
    run_tasks()

    seat_refund, rest = Refund.objects.order_by("pk")
    assert (seat_refund.amount, seat_refund.attendee_id) == (
        PRICE,
        paid_group["attendees"][0]["id"],
    )
    assert (rest.amount, rest.attendee_id) == (Decimal("99.00"), None)
    calls = refund_calls(stripe_on)
    assert [call.params["amount"] for call in calls] == ["4950", "9900"]
    payment = Payment.objects.get(booking_id=paid_group["id"])
    assert sum(refund.amount for refund in Refund.objects.all()) == payment.amount
    booking = Booking.objects.get(pk=paid_group["id"])
    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    assert (charge["amount_refunded"], charge["refunded"]) == (14850, True)
    assert (booking.status, booking.payment_status) == ("cancelled", "refunded")
    mine = client_for(user).get(f"/bookings/{paid_group['id']}").json()
    assert mine["refund_status"] == "succeeded"
    assert [attendee["status"] for attendee in mine["attendees"]] == ["cancelled"] * 3

    # Stripe's charge.refunded for the whole charge changes nothing more.
    version = booking.version
    deliver(stripe_webhooks, stripe_on, "charge.refunded", charge)
    booking.refresh_from_db()
    assert booking.version == version
    assert not PaymentIssue.objects.exists()
    assert len(refund_calls(stripe_on)) == 2


def test_a_paid_seat_cannot_be_cancelled_after_the_cutoff(paid_group, stripe_on, user, settings):
    settings.CANCELLATION_CUTOFF_HOURS = 24
    booking = Booking.objects.get(pk=paid_group["id"])
    seat = paid_group["attendees"][1]

    with time_machine.travel(booking.event.starts_at - timedelta(hours=2)):
        response = cancel_seat(user, booking.pk, seat["id"])

    assert response.status_code == 409
    assert response.json()["code"] == "cancellation_cutoff_passed"
    assert "24 hours" in response.json()["detail"]
    run_tasks()
    assert not Refund.objects.exists()
    assert not refund_calls(stripe_on)
    booking.refresh_from_db()
    assert (booking.status, booking.seats, booking.amount) == ("confirmed", 3, Decimal("148.50"))
    assert Attendee.objects.get(pk=seat["id"]).status == "active"
    assert claimed(booking.event) == 3

    # One hour before the cutoff the same seat can still go.
    with time_machine.travel(booking.event.starts_at - timedelta(hours=25)):
        assert cancel_seat(user, booking.pk, seat["id"]).status_code == 200
    assert Refund.objects.get().amount == PRICE


# --- one seat of an unpaid hold -------------------------------------------------------------


def test_a_seat_cancelled_from_a_hold_expires_its_session_and_checkout_opens_one_for_the_rest(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event, 3)
    old_session = body["checkout_session_id"]

    response = cancel_seat(user, body["id"], body["attendees"][2]["id"])

    assert response.status_code == 200, response.json()
    cancelled = response.json()
    assert (cancelled["status"], cancelled["payment_status"]) == ("pending", "unpaid")
    assert (cancelled["seats"], cancelled["amount"]) == (2, "99.00")
    assert (cancelled["checkout_url"], cancelled["checkout_session_id"]) == (None, None)
    assert claimed(event) == 2
    run_tasks()
    (expire,) = stripe_on.calls("POST", "/v1/checkout/sessions/")
    assert expire.path == f"/v1/checkout/sessions/{old_session}/expire"
    assert stripe.checkout.Session.retrieve(old_session).status == "expired"
    # Stripe's checkout.session.expired for it is no longer the booking's session: the hold
    # of the seats left stays.
    expired = stripe.checkout.Session.retrieve(old_session).to_dict()
    deliver(stripe_webhooks, stripe_on, "checkout.session.expired", expired)
    held = Booking.objects.get(pk=body["id"])
    assert (held.status, held.seats) == ("pending", 2)
    assert claimed(event) == 2

    checkout = client_for(user).post(f"/bookings/{body['id']}/checkout")

    assert checkout.status_code == 200, checkout.json()
    new_session = checkout.json()["checkout_session_id"]
    assert new_session and new_session != old_session
    assert checkout.json()["checkout_url"]
    first, second = session_creations(stripe_on)
    assert first.params["line_items"][0]["quantity"] == "3"
    assert second.params["line_items"][0]["quantity"] == "2"
    assert second.params["line_items"][0]["price_data"]["unit_amount"] == "4950"
    assert second.idempotency_key.endswith("-2") and second.idempotency_key != first.idempotency_key

    pay(stripe_webhooks, stripe_on, new_session)

    booking = Booking.objects.get(pk=body["id"])
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert (booking.seats, booking.amount) == (2, Decimal("99.00"))
    payment = Payment.objects.get()
    assert (payment.checkout_session_id, payment.amount) == (new_session, Decimal("99.00"))
    assert payment.settles_booking
    assert not refund_calls(stripe_on)
    assert not PaymentIssue.objects.exists()
    assert claimed(event) == 2


def test_the_old_session_paid_anyway_is_refunded_in_full_and_the_new_one_confirms(
    stripe_webhooks, stripe_on, user, event
):
    """The customer pays the 3-seat session in another tab as they cancel a seat."""
    body = book(user, event, 3)
    old_session = body["checkout_session_id"]
    assert cancel_seat(user, body["id"], body["attendees"][1]["id"]).status_code == 200
    paid_old = stripe_on.pay_session(old_session)  # before the expiry reached Stripe

    deliver(stripe_webhooks, stripe_on, "checkout.session.completed", paid_old)

    # The expiry was tried (Stripe said "not open": it was paid) and the payment refunded.
    assert stripe_on.calls("POST", f"/v1/checkout/sessions/{old_session}/expire")
    booking = Booking.objects.get(pk=body["id"])
    assert (booking.status, booking.payment_status) == ("pending", "unpaid")
    assert (booking.seats, booking.amount, booking.payment_intent_id) == (2, Decimal("99.00"), "")
    old_payment = Payment.objects.get()
    assert (old_payment.amount, old_payment.settles_booking) == (Decimal("148.50"), False)
    (call,) = refund_calls(stripe_on)
    assert call.params["amount"] == "14850"
    assert call.params["payment_intent"] == paid_old["payment_intent"]
    refund = Refund.objects.get()
    assert (refund.payment, refund.amount, refund.attendee_id) == (
        old_payment,
        Decimal("148.50"),
        None,
    )
    assert refund.status == AttemptStatus.SUCCEEDED
    issue = PaymentIssue.objects.get()
    assert (issue.kind, issue.booking_id) == ("amount_mismatch", booking.pk)

    checkout = client_for(user).post(f"/bookings/{body['id']}/checkout")
    assert checkout.status_code == 200, checkout.json()
    new_session = checkout.json()["checkout_session_id"]
    assert session_creations(stripe_on)[-1].params["line_items"][0]["quantity"] == "2"
    pay(stripe_webhooks, stripe_on, new_session)

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status, booking.seats) == ("confirmed", "paid", 2)
    settling = Payment.objects.get(settles_booking=True)
    assert (settling.checkout_session_id, settling.amount) == (new_session, Decimal("99.00"))
    assert booking.payment_intent_id == settling.payment_intent_id
    assert len(refund_calls(stripe_on)) == 1
    assert PaymentIssue.objects.count() == 1
    assert claimed(event) == 2


def test_the_old_session_paid_after_the_new_one_is_refunded_and_the_booking_stays_paid(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event, 3)
    old_session = body["checkout_session_id"]
    cancel_seat(user, body["id"], body["attendees"][0]["id"])
    paid_old = stripe_on.pay_session(old_session)  # its webhook is late
    new_session = (
        client_for(user).post(f"/bookings/{body['id']}/checkout").json()["checkout_session_id"]
    )
    pay(stripe_webhooks, stripe_on, new_session)

    deliver(stripe_webhooks, stripe_on, "checkout.session.completed", paid_old)

    booking = Booking.objects.get(pk=body["id"])
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert (booking.seats, booking.amount) == (2, Decimal("99.00"))
    (call,) = refund_calls(stripe_on)
    assert (call.params["amount"], call.params["payment_intent"]) == (
        "14850",
        paid_old["payment_intent"],
    )
    assert PaymentIssue.objects.get().kind == "duplicate_payment"
    assert Payment.objects.get(settles_booking=True).checkout_session_id == new_session


# --- the last seat --------------------------------------------------------------------------


def test_cancelling_the_last_paid_seat_cancels_the_booking_and_refunds_the_rest(
    stripe_webhooks, stripe_on, user, event
):
    body = book(user, event, 2)
    pay(stripe_webhooks, stripe_on, body["checkout_session_id"])
    first, last = body["attendees"]
    cancel_seat(user, body["id"], first["id"])

    response = cancel_seat(user, body["id"], last["id"])

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["seats"]) == ("cancelled", 1)
    assert [attendee["status"] for attendee in response.json()["attendees"]] == ["cancelled"] * 2
    assert claimed(event) == 0
    run_tasks()
    assert [(refund.amount, refund.attendee_id) for refund in Refund.objects.order_by("pk")] == [
        (PRICE, first["id"]),
        (PRICE, None),
    ]
    assert [call.params["amount"] for call in refund_calls(stripe_on)] == ["4950", "4950"]
    booking = Booking.objects.get(pk=body["id"])
    assert (booking.status, booking.payment_status) == ("cancelled", "refunded")
    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    assert (charge["amount"], charge["amount_refunded"]) == (9900, 9900)
    assert not PaymentIssue.objects.exists()
    assert seats_left(event) == 5


def test_cancelling_the_only_seat_of_a_free_booking_cancels_it(user):
    free = EventFactory(price=Decimal("0"), capacity=4)
    body = book(user, free, 1)

    response = cancel_seat(user, body["id"], body["attendees"][0]["id"])

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["payment_status"]) == ("cancelled", "free")
    assert claimed(free) == 0
    assert not Refund.objects.exists()


# --- who may cancel what --------------------------------------------------------------------


def test_a_seat_of_another_booking_or_someone_elses_booking_is_404(paid_group, user, event):
    other_person = UserFactory()
    theirs = book(other_person, event, 2)
    mine_seat = paid_group["attendees"][0]["id"]

    not_in_booking = cancel_seat(user, paid_group["id"], theirs["attendees"][0]["id"])
    not_my_booking = cancel_seat(other_person, paid_group["id"], mine_seat)
    anonymous = client_for(user)
    anonymous.credentials()

    assert not_in_booking.status_code == 404
    assert not_in_booking.json()["code"] == "not_found"
    assert not_my_booking.status_code == 404
    assert (
        anonymous.post(f"/bookings/{paid_group['id']}/attendees/{mine_seat}/cancel").status_code
        == 401
    )
    assert not Refund.objects.exists()
    assert Attendee.objects.filter(status="cancelled").count() == 0
    assert Booking.objects.get(pk=theirs["id"]).seats == 2
    assert Booking.objects.get(pk=paid_group["id"]).seats == 3


def test_a_seat_cancelled_twice_is_409_and_refunded_once(paid_group, stripe_on, user):
    seat = paid_group["attendees"][2]["id"]
    assert cancel_seat(user, paid_group["id"], seat).status_code == 200

    again = cancel_seat(user, paid_group["id"], seat)

    assert again.status_code == 409
    assert again.json()["code"] == "not_cancellable"
    run_tasks()
    assert Refund.objects.count() == 1
    assert len(refund_calls(stripe_on)) == 1
    booking = Booking.objects.get(pk=paid_group["id"])
    assert (booking.seats, booking.amount) == (2, Decimal("99.00"))


def test_a_seat_of_a_cancelled_booking_is_409(paid_group, user):
    client_for(user).post(f"/bookings/{paid_group['id']}/cancel")

    response = cancel_seat(user, paid_group["id"], paid_group["attendees"][0]["id"])

    assert response.status_code == 409
    assert response.json()["code"] == "not_cancellable"
    assert Refund.objects.count() == 1


# --- under concurrency (PostgreSQL) ---------------------------------------------------------


def rush(requests) -> Counter:
    """Every request callable runs at once, each thread on its own database connection."""
    start = threading.Barrier(len(requests))
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def attempt(request):
        try:
            start.wait(timeout=30)
            response = request()
            code = response.json().get("code", "") if response.status_code >= 300 else ""
            with lock:
                outcomes[(response.status_code, code, response.json().get("seats_left"))] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return outcomes


def booking_request(event_id: int, seats: int):
    client = client_for(UserFactory())
    return lambda: client.post("/bookings/", {"event_id": event_id, "seats": seats}, format="json")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("price", [Decimal("0"), PRICE], ids=["free", "paid"])
def test_fifty_people_booking_two_seats_at_once_get_exactly_four_bookings_of_nine_seats(price):
    """Row locks need PostgreSQL: SQLite serialises whole transactions instead."""
    event = EventFactory(capacity=9, price=price, max_seats_per_booking=4)
    requests = [booking_request(event.pk, 2) for _ in range(50)]

    outcomes = rush(requests)

    # Two seats or none: the ninth seat stays free, nobody gets one of two.
    assert outcomes == {(201, "", None): 4, (409, "sold_out", 1): 46}
    bookings = Booking.objects.filter(event=event)
    assert bookings.count() == 4
    assert sorted(bookings.values_list("seats", flat=True)) == [2, 2, 2, 2]
    assert Attendee.objects.filter(booking__event=event).count() == 8
    assert claimed(event) == 8
    assert_counter_matches_bookings()
    assert claimed(event) == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_seats_cancelled_while_others_book_keep_the_counter_equal_to_the_bookings():
    """Seat cancels (a refund owed each) race new bookings; the counter never drifts."""
    event = EventFactory(capacity=10, price=PRICE, max_seats_per_booking=3)
    groups = []
    for _ in range(3):
        person = UserFactory()
        booking = services.book_event(user=person, event_id=event.pk, seats=3)
        services.mark_paid(booking_id=booking.pk)  # paid outside Stripe: no Stripe here
        groups.append((person, booking))
    assert claimed(event) == 9
    cancels = []
    for person, booking in groups:
        client = client_for(person)
        for attendee in list(booking.attendees.order_by("position"))[1:]:
            url = f"/bookings/{booking.pk}/attendees/{attendee.pk}/cancel"
            cancels.append(lambda client=client, url=url: client.post(url))
    bookings = [booking_request(event.pk, 2) for _ in range(20)]

    outcomes = rush(cancels + bookings)

    cancelled = outcomes[(200, "", None)]
    booked = outcomes[(201, "", None)]
    assert cancelled == 6
    assert 0 <= booked <= 3
    assert set(outcomes) <= {(200, "", None), (201, "", None), (409, "sold_out", 1),
                             (409, "sold_out", 0)}  # fmt: skip
    assert sum(outcomes.values()) == 26
    assert claimed(event) == 3 + 2 * booked
    assert claimed(event) <= event.capacity
    assert_counter_matches_bookings()
    for _person, booking in groups:
        booking.refresh_from_db()
        assert (booking.status, booking.seats, booking.amount) == ("confirmed", 1, PRICE)
    seat_refunds = Refund.objects.filter(attendee__isnull=False)
    assert seat_refunds.count() == 6
    assert set(seat_refunds.values_list("amount", flat=True)) == {PRICE}
    active_seats = Attendee.objects.filter(
        booking__event=event, booking__status__in=["pending", "confirmed"], status="active"
    ).count()
    assert active_seats == claimed(event)


# --- the event cancelled after a seat went --------------------------------------------------


def test_an_event_cancelled_after_a_seat_refund_refunds_the_rest_once(
    paid_group, stripe_on, user, event
):
    cancel_seat(user, paid_group["id"], paid_group["attendees"][1]["id"])
    run_tasks()

    services.cancel_event(event=event, by=event.facilitator, reason="teacher ill")
    run_tasks()

    booking = Booking.objects.get(pk=paid_group["id"])
    assert (booking.status, booking.payment_status) == ("cancelled", "refunded")
    assert [call.params["amount"] for call in refund_calls(stripe_on)] == ["4950", "9900"]
    charge = stripe_on.charge_for_session(booking.checkout_session_id)
    assert (charge["amount"], charge["amount_refunded"]) == (14850, 14850)
    assert Refund.objects.get(attendee=None).amount == Decimal("99.00")
    assert not PaymentIssue.objects.exists()


def test_the_cancellation_summary_counts_a_group_refunded_after_a_seat_as_one_booking(
    paid_group, user, event
):
    cancel_seat(user, paid_group["id"], paid_group["attendees"][1]["id"])
    run_tasks()
    services.cancel_event(event=event, by=event.facilitator, reason="teacher ill")
    run_tasks()
    assert Booking.objects.get(pk=paid_group["id"]).payment_status == "refunded"

    summary = event_cancellation.summarize_cancellation(event)

    # One paid booking, its money back: `refunded` counts bookings ("paid bookings whose money
    # went back"), and the seat refunded before the event was cancelled is not the
    # cancellation's.
    assert (summary.refunded, summary.cancelled, summary.refunds_pending) == (1, 0, 0)
    assert (summary.refund_failed, summary.to_settle) == (0, 0)
