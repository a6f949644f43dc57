"""Group bookings through the API: seats, attendees, validation, seats counted everywhere.

The money of group bookings (Stripe quantity, a seat's partial refund, the cutoff) and the
concurrency of seats are in test_group_money.py.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import FacilitatorFactory, UserFactory
from bookings import services
from bookings.models import Attendee, Booking, BookingAudit
from conftest import client_for
from events.models import Event
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def book(client, **body):
    return client.post("/bookings/", body, format="json")


def seats_left(event: Event) -> int:
    return Event.objects.with_seats_left().get(pk=event.pk).seats_left


def nothing_written(event: Event) -> bool:
    event.refresh_from_db()
    return (
        not Booking.objects.filter(event=event).exists()
        and not Attendee.objects.exists()
        and not BookingAudit.objects.exists()
        and event.seats_claimed == 0
    )


@pytest.fixture
def free_event():
    return EventFactory(price=Decimal("0"), capacity=12)


@pytest.fixture
def paid_event():
    return EventFactory(price=Decimal("35.50"), currency="EUR", capacity=12)


# --- the original contract -------------------------------------------------------------------


def test_the_single_seat_contract_is_unchanged_plus_seats_and_the_booker_as_attendee(
    user_client, user, free_event
):
    response = book(user_client, event_id=free_event.pk)

    assert response.status_code == 201
    body = response.json()
    assert {
        "id", "event_id", "user_id", "facilitator_id", "status", "payment_status", "amount",
        "currency", "hold_expires_at", "created_at", "confirmed_at", "paid_at", "cancelled_at",
        "expired_at", "refunded_at", "checkout_url", "checkout_session_id", "refund_status",
        "event",
    } <= set(body)  # fmt: skip
    assert body["seats"] == 1
    (attendee,) = body["attendees"]
    assert attendee == {
        "id": attendee["id"],
        "position": 1,
        "name": user.name,
        "email": user.email,
        "status": "confirmed",
    }
    assert seats_left(free_event) == 11


# --- booking several seats -------------------------------------------------------------------


@pytest.mark.parametrize("seats", [1, 3, 10])
def test_booking_n_seats_takes_n_seats_and_costs_n_prices(user_client, user, paid_event, seats):
    response = book(user_client, event_id=paid_event.pk, seats=seats)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["seats"] == seats
    assert body["amount"] == str(Decimal("35.50") * seats)
    assert [a["position"] for a in body["attendees"]] == list(range(1, seats + 1))
    assert body["attendees"][0]["email"] == user.email  # the booker first
    assert all(a["status"] == "pending" for a in body["attendees"])
    assert seats_left(paid_event) == 12 - seats
    paid_event.refresh_from_db()
    assert paid_event.seats_claimed == seats
    assert Event.objects.filter(pk=paid_event.pk).recount_claimed_seats() == 1
    paid_event.refresh_from_db()
    assert paid_event.seats_claimed == seats  # the counter agrees with the bookings


def test_attendees_fill_the_seats_after_the_booker_and_unnamed_seats_are_guests(
    user_client, user, free_event
):
    response = book(
        user_client,
        event_id=free_event.pk,
        seats=4,
        attendees=[{"name": "Ana Lima", "email": "ana@example.com"}, {"name": "Ben Ng"}],
    )

    assert response.status_code == 201, response.json()
    people = [(a["name"], a["email"]) for a in response.json()["attendees"]]
    assert people == [
        (user.name, user.email),
        ("Ana Lima", "ana@example.com"),
        ("Ben Ng", ""),
        (f"Guest 4 of {user.name}", ""),
    ]
    booker = Attendee.objects.get(booking_id=response.json()["id"], position=1)
    assert booker.is_booker


def test_a_list_that_fills_every_seat_books_for_others(user_client, user, free_event):
    response = book(
        user_client,
        event_id=free_event.pk,
        seats=2,
        attendees=[{"name": "Ana", "email": "ana@example.com"}, {"name": "Ben"}],
    )

    assert response.status_code == 201
    assert [a["name"] for a in response.json()["attendees"]] == ["Ana", "Ben"]
    assert not Attendee.objects.filter(is_booker=True).exists()


def test_the_booker_named_in_the_list_keeps_the_place_the_list_gives(user_client, user, free_event):
    response = book(
        user_client,
        event_id=free_event.pk,
        seats=3,
        attendees=[{"name": "Ana"}, {"name": "Me", "email": user.email.upper()}],
    )

    assert response.status_code == 201
    attendees = response.json()["attendees"]
    assert [a["name"] for a in attendees] == ["Ana", "Me", f"Guest 3 of {user.name}"]
    assert Attendee.objects.get(pk=attendees[1]["id"]).is_booker


def test_an_event_may_allow_fewer_seats_per_booking(user_client, free_event):
    free_event.max_seats_per_booking = 2
    free_event.save()

    too_many = book(user_client, event_id=free_event.pk, seats=3)

    assert too_many.status_code == 400
    assert too_many.json()["code"] == "invalid"
    assert "seats" in too_many.json()["fields"]
    assert "at most 2" in too_many.json()["detail"]
    assert nothing_written(free_event)
    assert book(user_client, event_id=free_event.pk, seats=2).status_code == 201


def test_the_default_limit_comes_from_the_setting(settings, user_client):
    settings.MAX_SEATS_PER_BOOKING = 4
    event = EventFactory(price=0, capacity=50)

    assert event.max_seats_per_booking == 4
    assert book(user_client, event_id=event.pk, seats=5).status_code == 400
    assert book(user_client, event_id=event.pk, seats=4).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seats": 0}, "seats"),
        ({"seats": -2}, "seats"),
        ({"seats": 11}, "seats"),  # the event's limit (the setting's 10)
        ({"seats": 101}, "seats"),  # beyond any event's limit
        ({"seats": "2"}, "seats"),
        ({"seats": 2.5}, "seats"),
        ({"seats": True}, "seats"),
        ({"seats": None}, "seats"),
        ({"seats": 2, "attendees": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}, "attendees"),
        ({"attendees": [{"name": "A"}, {"name": "B"}]}, "attendees"),  # seats defaults to 1
        ({"seats": 2, "attendees": [{"email": "a@example.com"}]}, "attendees"),
        ({"seats": 2, "attendees": [{"name": ""}]}, "attendees"),
        ({"seats": 2, "attendees": [{"name": "A", "email": "not-an-email"}]}, "attendees"),
        ({"seats": 2, "attendees": [{"name": 7}]}, "attendees"),
        ({"seats": 2, "attendees": [{"name": "A" * 201}]}, "attendees"),
        ({"seats": 2, "attendees": "Ana"}, "attendees"),
        ({"seats": 2, "attendees": [["Ana"]]}, "attendees"),
        (
            {
                "seats": 3,
                "attendees": [
                    {"name": "A", "email": "x@example.com"},
                    {"name": "B", "email": "X@example.com"},
                ],
            },
            "attendees",
        ),
    ],
)
def test_invalid_seats_or_attendees_are_400_naming_the_field_and_write_nothing(
    user_client, free_event, body, field
):
    response = book(user_client, event_id=free_event.pk, **body)

    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"]
    assert nothing_written(free_event)


def test_asking_for_more_seats_than_are_left_is_409_with_the_seats_left(user_client, free_event):
    free_event.capacity = 5
    free_event.save()
    services.book_event(user=UserFactory(), event_id=free_event.pk, seats=2)

    response = book(user_client, event_id=free_event.pk, seats=4)

    assert response.status_code == 409
    assert response.json()["code"] == "sold_out"
    assert response.json()["seats_left"] == 3
    assert Booking.objects.filter(event=free_event).count() == 1  # all or nothing
    free_event.refresh_from_db()
    assert free_event.seats_claimed == 2
    assert book(user_client, event_id=free_event.pk, seats=3).status_code == 201
    assert seats_left(free_event) == 0


def test_a_sold_out_event_says_no_seats_left(user_client, free_event):
    free_event.capacity = 2
    free_event.save()
    services.book_event(user=UserFactory(), event_id=free_event.pk, seats=2)

    response = book(user_client, event_id=free_event.pk)

    assert response.status_code == 409
    assert response.json()["seats_left"] == 0


def test_one_active_booking_per_person_whatever_its_seats(user_client, free_event):
    assert book(user_client, event_id=free_event.pk, seats=2).status_code == 201

    again = book(user_client, event_id=free_event.pk, seats=1)

    assert again.status_code == 409
    assert again.json()["code"] == "already_booked"
    free_event.refresh_from_db()
    assert free_event.seats_claimed == 2


def test_lapsed_group_holds_free_all_their_seats(user_client, paid_event):
    paid_event.capacity = 4
    paid_event.save()
    held = services.book_event(user=UserFactory(), event_id=paid_event.pk, seats=3)
    Booking.objects.filter(pk=held.pk).update(hold_expires_at=timezone.now() - timedelta(1))

    assert seats_left(paid_event) == 4
    response = book(user_client, event_id=paid_event.pk, seats=4)

    assert response.status_code == 201, response.json()
    held.refresh_from_db()
    assert held.status == "expired"
    paid_event.refresh_from_db()
    assert paid_event.seats_claimed == 4


# --- capacity edits count seats ----------------------------------------------------------------


def test_capacity_cannot_drop_below_the_seats_taken():
    owner = FacilitatorFactory()
    event = EventFactory(facilitator=owner, price=0, capacity=10)
    services.book_event(user=UserFactory(), event_id=event.pk, seats=3)
    services.book_event(user=UserFactory(), event_id=event.pk, seats=2)
    client = client_for(owner)

    too_low = client.patch(f"/events/{event.pk}", {"capacity": 4}, format="json")
    exact = client.patch(f"/events/{event.pk}", {"capacity": 5}, format="json")

    assert too_low.status_code == 400
    assert too_low.json()["code"] == "capacity_below_seats_taken"
    assert exact.status_code == 200
    assert exact.json()["seats_left"] == 0


# --- one seat cancelled --------------------------------------------------------------------------


def test_cancelling_one_seat_frees_it_and_keeps_the_booking(user_client, free_event):
    body = book(user_client, event_id=free_event.pk, seats=3).json()
    guest = body["attendees"][1]

    response = user_client.post(f"/bookings/{body['id']}/attendees/{guest['id']}/cancel")

    assert response.status_code == 200, response.json()
    after = response.json()
    assert after["status"] == "confirmed"
    assert after["seats"] == 2
    assert [a["status"] for a in after["attendees"]] == ["confirmed", "cancelled", "confirmed"]
    assert seats_left(free_event) == 10
    change = BookingAudit.objects.filter(booking_id=body["id"]).order_by("-version").first()
    assert change.change == "booking.attendee_cancelled"
    assert change.attendee_id == guest["id"]
    assert change.to_status == change.from_status == "confirmed"


def test_cancelling_the_last_seat_cancels_the_booking(user_client, free_event):
    body = book(user_client, event_id=free_event.pk, seats=2).json()
    first, second = (a["id"] for a in body["attendees"])

    user_client.post(f"/bookings/{body['id']}/attendees/{first}/cancel")
    response = user_client.post(f"/bookings/{body['id']}/attendees/{second}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert seats_left(free_event) == 12
    free_event.refresh_from_db()
    assert free_event.seats_claimed == 0


def test_a_seat_cancelled_twice_or_of_another_booking_is_refused(user_client, user, free_event):
    body = book(user_client, event_id=free_event.pk, seats=2).json()
    guest = body["attendees"][1]["id"]
    other = services.book_event(user=UserFactory(), event_id=free_event.pk, seats=2)
    other_attendee = other.attendees.first().pk

    assert user_client.post(f"/bookings/{body['id']}/attendees/{guest}/cancel").status_code == 200
    twice = user_client.post(f"/bookings/{body['id']}/attendees/{guest}/cancel")
    foreign = user_client.post(f"/bookings/{body['id']}/attendees/{other_attendee}/cancel")
    not_mine = user_client.post(f"/bookings/{other.pk}/attendees/{other_attendee}/cancel")
    anonymous = APIClient().post(f"/bookings/{body['id']}/attendees/{guest}/cancel")

    assert twice.status_code == 409 and twice.json()["code"] == "not_cancellable"
    assert foreign.status_code == 404
    assert not_mine.status_code == 404
    assert anonymous.status_code == 401
    assert Booking.objects.get(pk=other.pk).seats == 2


def test_the_whole_booking_cancelled_frees_every_seat(user_client, free_event):
    body = book(user_client, event_id=free_event.pk, seats=4).json()
    user_client.post(f"/bookings/{body['id']}/attendees/{body['attendees'][3]['id']}/cancel")

    response = user_client.post(f"/bookings/{body['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["seats"] == 3  # the seats it held when cancelled
    assert seats_left(free_event) == 12


def test_the_list_shows_seats_and_attendees_in_a_fixed_number_of_queries(
    user_client, user, django_assert_max_num_queries
):
    for _ in range(5):
        services.book_event(user=user, event_id=EventFactory(price=0).pk, seats=3)

    with django_assert_max_num_queries(6):
        response = user_client.get("/bookings/")

    assert response.status_code == 200
    assert [len(b["attendees"]) for b in response.json()["results"]] == [3] * 5


# --- found in review: money and limits ----------------------------------------------------------


def test_a_payment_for_more_seats_than_the_booking_has_now_is_refunded_not_kept(user):
    """A seat cancelled while the paid session's webhook was on its way: what Stripe took is
    recorded as taken, and since it is not the booking's amount any more, all of it goes back."""
    from bookings.models import CheckoutSessionExpiry, Payment, PaymentIssue, Refund

    event = EventFactory(price=Decimal("10.00"), currency="EUR", capacity=5)
    booking = services.book_event(user=user, event_id=event.pk, seats=3)
    services.attach_checkout(
        booking_id=booking.pk,
        session_id="cs_race",
        url="https://checkout.stripe.com/c/pay/cs_race",
        expires_at=timezone.now() + timedelta(hours=1),
        amount=Decimal("30.00"),
    )
    services.cancel_attendee(booking=booking, attendee_id=booking.attendees.last().pk, by=user)

    payment = services.record_checkout_payment(
        booking_id=booking.pk,
        session_id="cs_race",
        payment_intent_id="pi_race",
        paid_at=timezone.now(),
        amount=Decimal("30.00"),
        currency="EUR",
    )

    booking.refresh_from_db()
    assert (booking.payment_status, booking.seats, booking.amount) == ("unpaid", 2, Decimal("20"))
    assert (payment.amount, payment.settles_booking) == (Decimal("30.00"), False)
    assert Refund.objects.get(payment=payment).amount == Decimal("30.00")
    assert PaymentIssue.objects.get().kind == "amount_mismatch"
    assert CheckoutSessionExpiry.objects.filter(checkout_session_id="cs_race").exists()
    assert Payment.objects.count() == 1


def test_a_session_opened_for_more_seats_than_are_left_is_not_attached(user):
    from bookings.models import CheckoutSessionExpiry

    event = EventFactory(price=Decimal("10.00"), capacity=5)
    booking = services.book_event(user=user, event_id=event.pk, seats=3)
    services.cancel_attendee(booking=booking, attendee_id=booking.attendees.last().pk, by=user)

    services.attach_checkout(  # Stripe answered for 3 seats after the seat was cancelled
        booking_id=booking.pk,
        session_id="cs_stale",
        url="https://checkout.stripe.com/c/pay/cs_stale",
        expires_at=timezone.now() + timedelta(hours=1),
        amount=Decimal("30.00"),
    )

    booking.refresh_from_db()
    assert booking.checkout_session_id == ""
    assert CheckoutSessionExpiry.objects.filter(checkout_session_id="cs_stale").exists()


def test_a_price_must_have_no_more_decimals_than_its_currency():
    owner = FacilitatorFactory()
    client = client_for(owner)
    event = EventFactory(facilitator=owner, price=Decimal("999"), currency="JPY", capacity=5)

    fractional = client.patch(f"/events/{event.pk}", {"price": "999.50"}, format="json")
    whole = client.patch(f"/events/{event.pk}", {"price": "1000.00"}, format="json")

    assert fractional.status_code == 400
    assert "price" in fractional.json()["fields"]
    assert whole.status_code == 200


def test_seats_costing_more_than_one_payment_can_be_are_refused(user_client):
    event = EventFactory(price=Decimal("15000000"), currency="VND", capacity=20)

    too_dear = book(user_client, event_id=event.pk, seats=7)

    assert too_dear.status_code == 400
    assert "seats" in too_dear.json()["fields"]
    assert nothing_written(event)
    assert book(user_client, event_id=event.pk, seats=6).status_code == 201


def test_the_service_refuses_more_attendees_than_seats_and_long_names_are_cut(user):
    from bookings.exceptions import TooManyAttendees

    event = EventFactory(price=0, capacity=5)
    with pytest.raises(TooManyAttendees):
        services.book_event(
            user=user, event_id=event.pk, seats=1, attendees=[{"name": "A"}, {"name": "B"}]
        )
    user.name = ""
    user.email = "x" * 190 + "@example.com"
    user.save()

    booking = services.book_event(user=user, event_id=event.pk, seats=2)

    assert [len(a.name) <= 200 for a in booking.attendees.all()] == [True, True]
