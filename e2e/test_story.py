"""The original product's whole story, over HTTP only, against real processes."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from e2e.conftest import Api, pay_with_stripe, sign_up
from e2e.stack import wait_until

pytestmark = pytest.mark.e2e


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def create_event(facilitator: Api, **overrides) -> dict:
    starts_at = datetime.now(UTC) + timedelta(days=10)
    body = {
        "title": "Sunrise Yoga Retreat",
        "description": "Breath, movement and silence.",
        "type": "Yoga",
        "rating": 4.8,
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=3)).isoformat(),
        "timezone": "Europe/Lisbon",
        "location": "Lisbon",
        "capacity": 5,
        "price": "30.00",
        "currency": "EUR",
    } | overrides
    response = facilitator.post("/events/", body)
    assert response.status_code == 201, response.text
    return response.json()


def crm_types(stack, booking_id: int) -> list[str]:
    """The notification types the CRM receiver stored for a booking, oldest first."""
    rows = stack.sql(
        "SELECT n.type FROM crm_crmnotification n JOIN crm_crmbooking b ON b.id = n.crm_booking_id"
        " WHERE b.booking_id = %s ORDER BY n.id",
        booking_id,
    )
    return [row[0] for row in rows]


def test_the_whole_story(stack):
    facilitator = sign_up(stack, email=unique("maya"), role="facilitator", name="Maya")
    attendee = sign_up(stack, email=unique("alice"), role="user", name="Alice")
    event = create_event(facilitator)

    # browse and filter, including the original's exact URL
    found = attendee.get("/events/filter?type=Yoga&rating=4.5").json()["results"]
    assert event["id"] in [e["id"] for e in found]
    assert attendee.get("/events?type=yoga&price_max=50&available=true").status_code == 200

    # book and pay; the catalogue (cached in Redis, bumped on commit) shows the seat taken on
    # every worker at once, and no page from before is served
    def seats_left_everywhere() -> set[int]:
        pages = [attendee.get("/events/filter?type=Yoga&rating=4.5") for _ in range(6)]
        pages += [attendee.get(f"/events/{event['id']}") for _ in range(6)]
        rows = [page.json() for page in pages[6:]]
        rows += [row for page in pages[:6] for row in page.json()["results"]]
        return {row["seats_left"] for row in rows if row["id"] == event["id"]}

    assert seats_left_everywhere() == {event["capacity"]}
    booking = attendee.post("/bookings/", {"event_id": event["id"]})
    assert booking.status_code == 201, booking.text
    assert seats_left_everywhere() == {event["capacity"] - 1}
    booking = booking.json()
    assert booking["checkout_url"].startswith(stack.stripe_url)
    assert pay_with_stripe(stack, booking["checkout_session_id"]).status_code == 200

    def paid() -> bool:
        mine = attendee.get("/bookings/").json()["results"][0]
        return mine["payment_status"] == "paid" and mine["status"] == "confirmed"

    wait_until(paid, timeout=30, what="the booking to be paid")
    mine = attendee.get("/bookings/").json()["results"][0]
    assert mine["facilitator_id"] == event["facilitator_id"]

    wait_until(
        lambda: {"booking.created", "booking.paid"} <= set(crm_types(stack, booking["id"])),
        timeout=30,
        what="the CRM to receive booking.created and booking.paid",
    )
    payload = stack.sql("SELECT payload FROM crm_crmbooking WHERE booking_id = %s", booking["id"])[
        0
    ][0]
    assert {"booking_id", "user", "event", "facilitator_id"} <= set(payload)
    assert payload["user"]["email"] and payload["event"] == event["id"]

    # the facilitator sees the registration and cancels the event
    registrations = facilitator.get(f"/facilitator/registrations/{event['id']}").json()
    assert [r["booking_id"] for r in registrations["results"]] == [booking["id"]]
    summary = facilitator.post(f"/facilitator/cancel/{event['id']}", {"reason": "Storm warning"})
    assert summary.status_code == 200
    assert summary.json()["status"] == "cancelled"
    # The answer comes at once; the worker settles the booking and makes the refund.
    wait_until(
        lambda: facilitator.post(f"/facilitator/cancel/{event['id']}").json()["refunded"] == 1,
        timeout=30,
        what="the worker to refund the paid booking",
    )
    assert facilitator.post(f"/facilitator/cancel/{event['id']}").json() | {"event_id": 0} == {
        "event_id": 0,
        "status": "cancelled",
        "refunded": 1,
        "cancelled": 0,
        "refunds_pending": 0,
        "refund_failed": 0,
        "to_settle": 0,
    }

    refunds = stack.stripe_requests("POST", "/v1/refunds")
    assert (
        len(
            [
                r
                for r in refunds
                if r["params"].get("metadata", {}).get("booking_id") == str(booking["id"])
            ]
        )
        == 1
    )
    after = attendee.get(f"/bookings/{booking['id']}").json()
    assert (after["status"], after["payment_status"]) == ("cancelled", "refunded")
    wait_until(
        lambda: "booking.refunded" in crm_types(stack, booking["id"]),
        timeout=30,
        what="the CRM to receive the refund",
    )


def test_nothing_is_lost_while_the_crm_is_down(stack):
    facilitator = sign_up(stack, email=unique("ravi"), role="facilitator", name="Ravi")
    attendee = sign_up(stack, email=unique("bob"), role="user", name="Bob")
    event = create_event(facilitator, title="Breathwork Workshop", type="Breathwork", price="0")

    stack.crm.stop()
    try:
        booking = attendee.post("/bookings/", {"event_id": event["id"]})
        assert booking.status_code == 201  # the booking never waits for the CRM
        booking_id = booking.json()["id"]
        wait_until(
            lambda: (
                stack.sql(
                    "SELECT attempts FROM crm_delivery"
                    " WHERE booking_id = %s AND kind = 'notification'",
                    booking_id,
                )[0][0]
                >= 1
            ),
            timeout=30,
            what="a failed delivery attempt while the CRM is down",
        )
    finally:
        stack.crm.start()

    wait_until(
        lambda: crm_types(stack, booking_id) == ["booking.created"],
        timeout=60,
        what="the delivery to be retried once the CRM is back",
    )
    delivered = stack.sql(
        "SELECT status, succeeded_at IS NOT NULL FROM crm_delivery"
        " WHERE booking_id = %s AND kind = 'notification'",
        booking_id,
    )
    assert delivered == [("succeeded", True)]


def test_a_group_books_pays_and_one_seat_is_refunded_alone(stack):
    facilitator = sign_up(stack, email=unique("maya"), role="facilitator", name="Maya")
    booker = sign_up(stack, email=unique("bea"), role="user", name="Bea")
    event = create_event(facilitator, capacity=4, price="30.00")

    too_many = booker.post("/bookings/", {"event_id": event["id"], "seats": 5})
    assert too_many.status_code == 409 and too_many.json()["seats_left"] == 4, too_many.text
    booking = booker.post(
        "/bookings/",
        {
            "event_id": event["id"],
            "seats": 3,
            "attendees": [{"name": "Ana", "email": unique("ana")}, {"name": "Ben"}],
        },
    )
    assert booking.status_code == 201, booking.text
    booking = booking.json()
    assert (booking["seats"], booking["amount"]) == (3, "90.00")
    (session,) = [
        r
        for r in stack.stripe_requests("POST", "/v1/checkout/sessions")
        if r["params"].get("client_reference_id") == str(booking["id"])
    ]
    assert session["params"]["line_items"][0]["quantity"] == "3"
    assert pay_with_stripe(stack, booking["checkout_session_id"]).status_code == 200
    wait_until(
        lambda: booker.get(f"/bookings/{booking['id']}").json()["payment_status"] == "paid",
        timeout=30,
        what="the group booking to be paid",
    )

    ana = booking["attendees"][1]
    cancelled = booker.post(f"/bookings/{booking['id']}/attendees/{ana['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["seats"], cancelled.json()["amount"]) == (2, "60.00")
    assert booker.get(f"/events/{event['id']}").json()["seats_left"] == 2

    def seat_refunds() -> list[dict]:
        return [
            r["params"]
            for r in stack.stripe_requests("POST", "/v1/refunds")
            if r["params"].get("metadata", {}).get("booking_id") == str(booking["id"])
        ]

    wait_until(lambda: seat_refunds(), timeout=30, what="the worker to refund the seat")
    assert [refund["amount"] for refund in seat_refunds()] == ["3000"]
    after = booker.get(f"/bookings/{booking['id']}").json()
    assert (after["status"], after["payment_status"], after["seats"]) == ("confirmed", "paid", 2)
    wait_until(
        lambda: "booking.attendee_cancelled" in crm_types(stack, booking["id"]),
        timeout=30,
        what="the CRM to hear of the seat cancelled",
    )
    registrations = facilitator.get(f"/facilitator/registrations/{event['id']}").json()
    (row,) = registrations["results"]
    assert row["seats"] == 2
    assert [a["status"] for a in row["attendees"]] == ["confirmed", "cancelled", "confirmed"]
