"""Periodic work runs in the scheduler process (the Procfile's `scheduler`), not in web requests."""

import pytest

from e2e.conftest import sign_up
from e2e.stack import wait_until
from e2e.test_story import create_event, crm_types, unique

pytestmark = pytest.mark.e2e


def test_a_lapsed_hold_is_expired_and_announced_without_any_web_request(stack):
    facilitator = sign_up(stack, email=unique("lena"), role="facilitator", name="Lena")
    attendee = sign_up(stack, email=unique("omar"), role="user", name="Omar")
    event = create_event(facilitator, title="Sound Bath", type="Meditation", price="25.00")
    booking = attendee.post("/bookings/", {"event_id": event["id"]})
    assert booking.status_code == 201, booking.text
    booking = booking.json()
    assert (booking["status"], booking["payment_status"]) == ("pending", "unpaid")
    wait_until(
        lambda: crm_types(stack, booking["id"]) == ["booking.created"],
        timeout=30,
        what="the CRM to receive booking.created",
    )

    # Time passes: the hold lapses (BOOKING_HOLD_MINUTES is whole minutes, so the test moves
    # the expiry into the past instead of waiting). From here on nobody calls the web app.
    lapsed = stack.sql(
        "UPDATE bookings_booking SET hold_expires_at = now() - interval '1 minute'"
        " WHERE id = %s AND status = 'pending' RETURNING id",
        booking["id"],
    )
    assert lapsed == [(booking["id"],)]

    def booking_row() -> tuple:
        return stack.sql(
            "SELECT status, payment_status, expired_at IS NOT NULL FROM bookings_booking"
            " WHERE id = %s",
            booking["id"],
        )[0]

    wait_until(
        lambda: booking_row()[0] == "expired",
        timeout=30,
        what="the scheduler to mark the lapsed hold expired",
    )
    assert booking_row() == ("expired", "unpaid", True)
    wait_until(
        lambda: "booking.expired" in crm_types(stack, booking["id"]),
        timeout=30,
        what="the CRM receiver to get booking.expired",
    )
    assert crm_types(stack, booking["id"]) == ["booking.created", "booking.expired"]
    assert stack.sql(
        "SELECT status FROM crm_delivery WHERE booking_id = %s AND event_type = 'booking.expired'",
        booking["id"],
    ) == [("succeeded",)]
    wait_until(
        lambda: (
            stack.sql(
                "SELECT status FROM bookings_bookingemail WHERE booking_id = %s"
                " AND kind = 'hold_expired'",
                booking["id"],
            )
            == [("succeeded",)]
        ),
        timeout=30,
        what="the worker to send the hold-expired email",
    )
    assert stack.scheduler.popen.poll() is None, "the scheduler exited; see its log"
