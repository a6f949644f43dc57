"""Money that can never get stuck or be taken twice, tried at the points where processes die.

Refunds, payments and event cancellations against the fake Stripe over HTTP, driven by the
real `stripe` library, with the real `db_worker`. A process "dies" by raising SystemExit (a
BaseException: no `except Exception` catches it), as the process's end would stop it there.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.tests.factories import UserFactory
from ahoum import attempts
from ahoum.attempts import AttemptStatus
from bookings import services, tasks
from bookings.models import Booking, Payment, PaymentIssue, Refund
from bookings.services import booking as booking_service
from bookings.services import payments, refunds
from conftest import client_for, run_tasks, run_tasks_until
from events.tests.factories import EventFactory
from fakes.stripe_api import TEST_SECRET_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_on(settings, fake_stripe, monkeypatch):
    settings.STRIPE_SECRET_KEY = TEST_SECRET_KEY
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    return fake_stripe


@pytest.fixture
def event():
    return EventFactory(price=Decimal("40.00"), currency="EUR", capacity=5, title="Breathwork")


def record(booking: Booking, session: dict, *, paid_at=None) -> Payment:
    """Stripe's event that `session` was paid (at `paid_at`) is applied to the booking."""
    return services.record_checkout_payment(
        booking_id=booking.pk,
        session_id=session["id"],
        payment_intent_id=session["payment_intent"],
        paid_at=paid_at or timezone.now(),
    )


def pay(fake, booking: Booking) -> Payment:
    """The person pays the booking's open session and Stripe's event is applied."""
    return record(booking, fake.pay_session(booking.checkout_session_id))


def paid_booking(fake, event) -> Booking:
    booking = payments.book_with_checkout(user=UserFactory(), event_id=event.pk)
    pay(fake, booking)
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    return booking


def refunded_in_stripe(fake, booking: Booking) -> int:
    """How much of the booking's charge Stripe has refunded (minor units)."""
    return fake.charge_for_session(booking.checkout_session_id)["amount_refunded"]


def after_lease(refund: Refund):
    refund.refresh_from_db()
    return time_machine.travel(refund.next_attempt_at + timedelta(seconds=1), tick=False)


# --- a refund's process dies ----------------------------------------------------------------


def cancelled_with_refund_owed(fake, event) -> tuple[Booking, Refund]:
    booking = paid_booking(fake, event)
    services.cancel_booking(booking=booking, by=booking.user)
    return booking, Refund.objects.get(booking=booking)


def test_refund_whose_process_died_right_after_the_claim_is_made_once_after_the_lease(
    stripe_on, event
):
    booking, refund = cancelled_with_refund_owed(stripe_on, event)
    claimed = attempts.claim(Refund, refund.pk, after_attempts=0, policy=refunds.POLICY)
    assert claimed.status == AttemptStatus.RUNNING  # ... and the process died here

    run_tasks()  # the first-attempt task finds the attempt under way and leaves it
    assert not stripe_on.calls("POST", "/v1/refunds")
    with after_lease(refund):
        run_tasks()

    refund.refresh_from_db()
    booking.refresh_from_db()
    assert (refund.status, refund.attempts) == (AttemptStatus.SUCCEEDED, 2)
    assert booking.payment_status == "refunded"
    assert refunded_in_stripe(stripe_on, booking) == 4000
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 1


def test_refund_whose_process_died_during_the_call_is_made_once_after_the_lease(
    stripe_on, event, monkeypatch
):
    booking, refund = cancelled_with_refund_owed(stripe_on, event)

    def dies_while_connecting(**params):
        raise SystemExit(1)

    with monkeypatch.context() as patch:
        patch.setattr(stripe.Refund, "create", dies_while_connecting)
        with pytest.raises(SystemExit):
            refunds.attempt_refund(refund_id=refund.pk, after_attempts=0)

    with after_lease(refund):
        run_tasks()

    refund.refresh_from_db()
    assert refund.status == AttemptStatus.SUCCEEDED
    assert refunded_in_stripe(stripe_on, booking) == 4000
    assert Booking.objects.get(pk=booking.pk).payment_status == "refunded"


def test_refund_whose_answer_was_lost_is_repeated_with_the_same_key_and_made_once(
    stripe_on, event, monkeypatch
):
    """Stripe made the refund; the process died before recording it. The repeat reuses the
    attempt's idempotency key, so Stripe answers with the stored refund, not a second one."""
    booking, refund = cancelled_with_refund_owed(stripe_on, event)
    real_create = stripe.Refund.create

    def refunds_then_dies(**params):
        real_create(**params)
        raise SystemExit(1)

    with monkeypatch.context() as patch:
        patch.setattr(stripe.Refund, "create", refunds_then_dies)
        with pytest.raises(SystemExit):
            refunds.attempt_refund(refund_id=refund.pk, after_attempts=0)
    assert refunded_in_stripe(stripe_on, booking) == 4000
    assert Booking.objects.get(pk=booking.pk).payment_status == "paid"  # not recorded yet

    with after_lease(refund):
        run_tasks()

    refund.refresh_from_db()
    first, repeat = stripe_on.calls("POST", "/v1/refunds")
    assert first.idempotency_key == repeat.idempotency_key == f"ahoum-refund-{refund.pk}-1"
    assert refund.status == AttemptStatus.SUCCEEDED and refund.stripe_refund_id.startswith("re_")
    assert refunded_in_stripe(stripe_on, booking) == 4000  # once
    assert Booking.objects.get(pk=booking.pk).payment_status == "refunded"


def test_refund_whose_call_hangs_past_the_timeout_is_retried_and_made_once(
    stripe_on, event, monkeypatch
):
    booking, refund = cancelled_with_refund_owed(stripe_on, event)
    real_create = stripe.Refund.create
    calls = []

    def times_out_once(**params):
        calls.append(params["idempotency_key"])
        if len(calls) == 1:
            raise stripe.APIConnectionError("Request timed out (injected)")
        return real_create(**params)

    monkeypatch.setattr(stripe.Refund, "create", times_out_once)
    run_tasks_until(timezone.now() + timedelta(hours=1))

    refund.refresh_from_db()
    assert refund.status == AttemptStatus.SUCCEEDED
    # The timeout's outcome is unknown: the retry repeats its key (Stripe would replay a
    # refund it made), rather than risk a second refund under a new key.
    assert calls == [f"ahoum-refund-{refund.pk}-1", f"ahoum-refund-{refund.pk}-1"]
    assert refunded_in_stripe(stripe_on, booking) == 4000


def test_an_unexpected_error_in_a_refund_is_recorded_and_retried(stripe_on, event, monkeypatch):
    _, refund = cancelled_with_refund_owed(stripe_on, event)
    real_create = stripe.Refund.create
    failures = iter([KeyError("a bug"), None])

    def fails_once(**params):
        if error := next(failures):
            raise error
        return real_create(**params)

    monkeypatch.setattr(stripe.Refund, "create", fails_once)
    run_tasks()
    refund.refresh_from_db()
    assert (refund.status, refund.attempts, refund.failures) == (AttemptStatus.PENDING, 1, 0)
    assert "KeyError" in refund.last_error

    run_tasks_until(timezone.now() + timedelta(hours=1))
    assert Refund.objects.get(pk=refund.pk).status == AttemptStatus.SUCCEEDED


def test_a_refund_with_no_stripe_payment_gives_up_to_staff_at_once(stripe_on, event, user):
    booking = services.book_event(user=user, event_id=event.pk)
    services.mark_paid(booking_id=booking.pk, reason="paid at the desk")
    services.cancel_booking(booking=booking, by=user)

    run_tasks()

    refund = Refund.objects.get()
    assert refund.status == AttemptStatus.GAVE_UP and "by hand" in refund.last_error
    issue = PaymentIssue.objects.get()
    assert (issue.kind, issue.booking_id) == ("refund_failing", booking.pk)
    body = client_for(user).get(f"/bookings/{booking.pk}").json()
    assert (body["payment_status"], body["refund_status"]) == ("paid", "failed")
    assert not stripe_on.calls("POST", "/v1/refunds")


def test_the_staff_index_counts_what_needs_a_person(stripe_on, event, user, admin_client):
    booking = services.book_event(user=user, event_id=event.pk)
    services.mark_paid(booking_id=booking.pk, reason="paid at the desk")
    services.cancel_booking(booking=booking, by=user)
    run_tasks()

    page = admin_client.get("/admin/").content.decode()

    assert "Needs attention" in page
    assert 'href="/admin/bookings/paymentissue/?resolved__exact=0">Open payment issues' in page
    assert 'href="/admin/bookings/refund/?status__exact=gave_up">Refunds given up' in page


# --- refunds never run in a request ---------------------------------------------------------


def test_cancelling_an_event_with_many_paid_bookings_answers_at_once_and_refunds_each_once(
    stripe_on, event, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(tasks, "SETTLE_BATCH", 7)  # several batches
    Booking.objects.all().delete()
    event.capacity = 40
    event.save()
    paid = [paid_booking(stripe_on, event) for _ in range(30)]
    unpaid = services.book_event(user=UserFactory(), event_id=event.pk)

    with django_assert_max_num_queries(20):
        response = client_for(event.facilitator).post(f"/facilitator/cancel/{event.pk}")

    assert response.status_code == 200
    assert (response.json()["to_settle"], response.json()["refunds_pending"]) == (31, 30)
    assert not stripe_on.calls("POST", "/v1/refunds")  # nothing in the request

    run_tasks()

    intents = sorted(
        call.params["payment_intent"] for call in stripe_on.calls("POST", "/v1/refunds")
    )
    assert intents == sorted(booking.payment_intent_id for booking in paid)  # each exactly once
    assert all(refunded_in_stripe(stripe_on, booking) == 4000 for booking in paid)
    states = set(Booking.objects.filter(pk__in=[b.pk for b in paid]).values_list(
        "status", "payment_status"))  # fmt: skip
    assert states == {("cancelled", "refunded")}
    assert Booking.objects.get(pk=unpaid.pk).status == "cancelled"
    summary = client_for(event.facilitator).post(f"/facilitator/cancel/{event.pk}").json()
    assert (summary["refunded"], summary["cancelled"], summary["to_settle"]) == (30, 1, 0)
    run_tasks_until(timezone.now() + timedelta(days=1))  # lease and takeover tasks: no-ops
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 30


def test_settling_a_cancelled_event_survives_a_worker_dying_mid_batch(
    stripe_on, event, monkeypatch
):
    paid = [paid_booking(stripe_on, event) for _ in range(3)]
    client_for(event.facilitator).post(f"/facilitator/cancel/{event.pk}")
    real_cancel = booking_service.cancel_locked
    seen = []

    def dies_on_the_second_booking(booking, **kwargs):
        seen.append(booking.pk)
        if len(seen) == 2:
            raise SystemExit(1)
        return real_cancel(booking, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(booking_service, "cancel_locked", dies_on_the_second_booking)
        with pytest.raises(SystemExit):
            tasks.settle_cancelled_event.call(event.pk, event.facilitator_id)
    # The batch rolled back: nothing was cancelled, and a takeover task is waiting.
    assert Booking.objects.filter(event=event, status="confirmed").count() == 3

    run_tasks_until(timezone.now() + timedelta(hours=1))

    assert all(refunded_in_stripe(stripe_on, booking) == 4000 for booking in paid)
    assert len(stripe_on.calls("POST", "/v1/refunds")) == 3


# --- paid twice -----------------------------------------------------------------------------


def test_a_late_webhook_and_a_second_session_keep_one_payment_and_refund_the_other(
    stripe_on, event, user
):
    """Pay; the webhook is late; the hold lapses; the person opens a new session and pays it
    too. Both webhooks arrive: one payment settles the booking, the other is refunded once."""
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    first = stripe_on.pay_session(booking.checkout_session_id)
    with time_machine.travel(booking.hold_expires_at + timedelta(minutes=5)):
        services.expire_stale_holds()
        renewed = client_for(user).post(f"/bookings/{booking.pk}/checkout").json()
        second = stripe_on.pay_session(renewed["checkout_session_id"])
        for session in (first, second):
            record(booking, session)
        run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    kept, extra = Payment.objects.order_by("pk")
    assert (kept.settles_booking, extra.settles_booking) == (True, False)
    assert booking.payment_intent_id == kept.payment_intent_id == first["payment_intent"]
    (refund_call,) = stripe_on.calls("POST", "/v1/refunds")
    assert refund_call.params["payment_intent"] == second["payment_intent"]
    assert Refund.objects.get().status == AttemptStatus.SUCCEEDED
    assert PaymentIssue.objects.get().kind == "duplicate_payment"
    # The booking's own refund later refunds the kept payment, not the extra one again.
    services.cancel_booking(booking=booking, by=user)
    run_tasks()
    calls = stripe_on.calls("POST", "/v1/refunds")
    assert [call.params["payment_intent"] for call in calls] == [
        second["payment_intent"],
        first["payment_intent"],
    ]
    assert Booking.objects.get(pk=booking.pk).payment_status == "refunded"


def test_the_same_session_reported_twice_counts_once(stripe_on, event):
    booking = payments.book_with_checkout(user=UserFactory(), event_id=event.pk)
    session = stripe_on.pay_session(booking.checkout_session_id)
    for _ in range(2):  # checkout.session.completed, then async_payment_succeeded, say
        record(booking, session)
    run_tasks()

    assert Payment.objects.count() == 1
    assert not Refund.objects.exists() and not PaymentIssue.objects.exists()


def test_marking_paid_another_way_expires_the_open_session(stripe_on, event, user):
    booking = payments.book_with_checkout(user=user, event_id=event.pk)

    services.mark_paid(booking_id=booking.pk, reason="paid at the desk")
    run_tasks()

    assert stripe_on.calls("POST", f"/v1/checkout/sessions/{booking.checkout_session_id}/expire")
    session = stripe.checkout.Session.retrieve(booking.checkout_session_id)
    assert session.status == "expired"


def test_a_session_paid_before_staff_marked_the_booking_paid_is_refunded(stripe_on, event, user):
    """The CRM (or staff) marked it paid while the person was paying the open session."""
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    session = stripe_on.pay_session(booking.checkout_session_id)
    services.mark_paid(booking_id=booking.pk, reason="marked paid by the CRM")

    record(booking, session)
    run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    (refund_call,) = stripe_on.calls("POST", "/v1/refunds")
    assert refund_call.params["payment_intent"] == session["payment_intent"]
    assert stripe_on.charge_for_session(session["id"])["amount_refunded"] == 4000
    assert PaymentIssue.objects.get().kind == "duplicate_payment"


def test_cancelling_an_unpaid_hold_expires_its_session(stripe_on, event, user):
    booking = payments.book_with_checkout(user=user, event_id=event.pk)

    client_for(user).post(f"/bookings/{booking.pk}/cancel")
    run_tasks()

    assert stripe.checkout.Session.retrieve(booking.checkout_session_id).status == "expired"


def test_a_failed_session_expiry_is_tried_again(stripe_on, event, user):
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    stripe_on.fail_next("POST", "/v1/checkout/sessions", status=500)

    services.cancel_booking(booking=booking, by=user)
    run_tasks_until(timezone.now() + timedelta(hours=1))

    expiries = stripe_on.calls("POST", f"/v1/checkout/sessions/{booking.checkout_session_id}/")
    assert len(expiries) == 2
    assert stripe.checkout.Session.retrieve(booking.checkout_session_id).status == "expired"


# --- on-time payments win -------------------------------------------------------------------


def test_payment_completed_before_the_hold_ended_but_processed_after_confirms(
    stripe_on, event, user
):
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    session = stripe_on.pay_session(booking.checkout_session_id)
    paid_at = timezone.now()
    with time_machine.travel(booking.hold_expires_at + timedelta(hours=2)):
        services.expire_stale_holds()  # the hold lapsed while the worker was down
        record(booking, session, paid_at=paid_at)

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert not Refund.objects.exists()


def test_on_time_payment_whose_seat_was_given_away_overbooks_by_one_and_tells_staff(
    stripe_on, user
):
    event = EventFactory(price=Decimal("40.00"), capacity=1)
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    session = stripe_on.pay_session(booking.checkout_session_id)
    paid_at = timezone.now()
    with time_machine.travel(booking.hold_expires_at + timedelta(minutes=5)):
        someone = services.book_event(user=UserFactory(), event_id=event.pk)  # took the seat
        record(booking, session, paid_at=paid_at)
        assert Booking.objects.filter(event=event).holding_seats().count() == 2

    assert Booking.objects.get(pk=booking.pk).status == "confirmed"
    assert Booking.objects.get(pk=someone.pk).status == "pending"
    assert PaymentIssue.objects.get().kind == "overbooked"
    assert not Refund.objects.exists()


def test_stripe_events_are_judged_by_stripes_time_not_the_workers(stripe_webhooks, stripe_on, user):
    """The webhook's event carries `created`; it decides, however late the worker is."""
    event = EventFactory(price=Decimal("40.00"), capacity=1)
    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    completed = stripe_on.event(
        "checkout.session.completed", stripe_on.pay_session(booking.checkout_session_id)
    )
    assert stripe_webhooks.send(completed).status_code == 200  # stored; the worker is down

    with time_machine.travel(booking.hold_expires_at + timedelta(hours=3)):
        services.expire_stale_holds()
        services.book_event(user=UserFactory(), event_id=event.pk)  # the seat went meanwhile
        run_tasks()

    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("confirmed", "paid")
    assert PaymentIssue.objects.get().kind == "overbooked"


# --- the sweep: the safety net under the task queue ----------------------------------------


def test_sweep_takes_over_a_refund_whose_task_row_was_lost(stripe_on, event):
    booking, refund = cancelled_with_refund_owed(stripe_on, event)
    DBTaskResult.objects.filter(status="READY").delete()  # a worker died holding them

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        call_command("sweep", verbosity=0)
        run_tasks()

    assert Refund.objects.get(pk=refund.pk).status == AttemptStatus.SUCCEEDED
    assert refunded_in_stripe(stripe_on, booking) == 4000


def test_sweep_settles_a_cancelled_event_whose_settlement_was_lost(stripe_on, event):
    paid = paid_booking(stripe_on, event)
    client_for(event.facilitator).post(f"/facilitator/cancel/{event.pk}")
    DBTaskResult.objects.filter(status="READY").delete()

    call_command("sweep", verbosity=0)
    run_tasks()

    assert Booking.objects.get(pk=paid.pk).payment_status == "refunded"


def test_a_refund_stripe_reports_failed_later_is_handed_to_staff_and_retried_with_a_new_key(
    stripe_webhooks, stripe_on, event, admin_client
):
    """Stripe accepted the refund, then could not return the money (a closed card, say)."""
    booking, refund = cancelled_with_refund_owed(stripe_on, event)
    run_tasks()
    refund.refresh_from_db()
    assert refund.status == AttemptStatus.SUCCEEDED
    stripe_refund = stripe.Refund.retrieve(refund.stripe_refund_id)
    failed = stripe_on.event(
        "refund.failed",
        stripe_refund.to_dict() | {"status": "failed", "failure_reason": "lost_or_stolen_card"},
    )

    assert stripe_webhooks.send(failed).status_code == 200
    assert stripe_webhooks.send(failed).status_code == 200  # a replay changes nothing
    run_tasks()

    refund.refresh_from_db()
    assert refund.status == AttemptStatus.GAVE_UP and "lost_or_stolen_card" in refund.last_error
    issue = PaymentIssue.objects.get()
    assert (issue.kind, issue.booking_id) == ("refund_failing", booking.pk)
    body = client_for(booking.user).get(f"/bookings/{booking.pk}").json()
    assert body["refund_status"] == "failed"
    # Staff retry it: a new idempotency key, or Stripe would answer with the failed refund.
    refunds.retry(refund_id=refund.pk)
    run_tasks()
    keys = [call.idempotency_key for call in stripe_on.calls("POST", "/v1/refunds")]
    assert keys == [f"ahoum-refund-{refund.pk}-1", f"ahoum-refund-{refund.pk}-2"]


def test_a_session_expiry_whose_worker_died_after_the_claim_is_made_after_the_lease(
    stripe_on, event, user
):
    from bookings.models import CheckoutSessionExpiry

    booking = payments.book_with_checkout(user=user, event_id=event.pk)
    services.cancel_booking(booking=booking, by=user)
    expiry = CheckoutSessionExpiry.objects.get(checkout_session_id=booking.checkout_session_id)
    claimed = attempts.claim(
        CheckoutSessionExpiry, expiry.pk, after_attempts=0, policy=payments.SESSION_EXPIRY_POLICY
    )  # ... and the worker died here
    run_tasks()
    assert stripe.checkout.Session.retrieve(booking.checkout_session_id).status == "open"

    with time_machine.travel(claimed.next_attempt_at + timedelta(seconds=1), tick=False):
        run_tasks()

    assert stripe.checkout.Session.retrieve(booking.checkout_session_id).status == "expired"
    assert CheckoutSessionExpiry.objects.get(pk=expiry.pk).status == AttemptStatus.SUCCEEDED
