"""The fake Stripe API, driven the way the app drives Stripe: the real `stripe` library and HTTP."""

import json
import re
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import stripe

from fakes.stripe_api import (
    ACCOUNT_ID,
    TEST_SECRET_KEY,
    FakeStripe,
    FakeStripeError,
    stripe_signature_header,
)

WEBHOOK_SECRET = "whsec_test_ahoum"
AUTH = {"Authorization": f"Bearer {TEST_SECRET_KEY}"}
# What dj-stripe asks for on every checkout.session.* event (djstripe/models/checkout.py).
DJSTRIPE_SESSION_EXPAND = ["line_items", "total_details.breakdown", "line_items.data.discounts"]


# One value for the whole module: two calls replaying one idempotency key must send the very
# same parameters, even when they straddle a second. Valid for the 2 h after import.
SESSION_EXPIRES_AT = int(time.time()) + 2 * 60 * 60


def create_session(**overrides):
    """A Checkout Session for two seats at 25.00 EUR, as the booking flow would create it."""
    params = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "EUR",
                    "unit_amount": 2500,
                    "product_data": {"name": "Breathwork circle"},
                },
                "quantity": 2,
            }
        ],
        "customer_email": "ada@example.com",
        "client_reference_id": "booking-5",
        "metadata": {"booking_id": 5},
        "expires_at": SESSION_EXPIRES_AT,
        "success_url": "https://ahoum.example/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://ahoum.example/cancelled",
    }
    params.update(overrides)  # None drops a parameter: the library does not send it
    return stripe.checkout.Session.create(**params)


def test_fixture_points_the_stripe_library_at_a_running_fake(fake_stripe):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake_stripe.url)
    assert stripe.api_base == fake_stripe.url
    assert re.fullmatch(r"sk_test_[A-Za-z0-9]{24,}", stripe.api_key)
    assert requests.get(f"{fake_stripe.url}/v1/account", headers=AUTH, timeout=5).ok


def test_create_session_returns_an_open_unpaid_session_shaped_like_stripes(fake_stripe):
    session = create_session(idempotency_key="booking-5-checkout")

    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.status, session.payment_status) == ("open", "unpaid")
    assert (session.amount_subtotal, session.amount_total, session.currency) == (5000, 5000, "eur")
    assert session.url == f"{fake_stripe.url}/pay/{session.id}"
    assert session.payment_intent is None
    assert session.customer is None
    assert session.customer_details.email == "ada@example.com"
    assert session.metadata.to_dict() == {"booking_id": "5"}
    assert session.client_reference_id == "booking-5"
    assert session.livemode is False
    assert isinstance(session.created, int)
    assert session.expires_at > session.created
    assert "line_items" not in session  # only with expand, as on Stripe
    [request] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert request.idempotency_key == "booking-5-checkout"
    assert request.headers["idempotency-key"] == "booking-5-checkout"
    assert request.params["line_items"][0]["price_data"]["unit_amount"] == "2500"
    assert request.params["metadata"] == {"booking_id": "5"}


def test_retrieve_session_expands_what_dj_stripe_asks_for(fake_stripe):
    session = create_session()

    retrieved = stripe.checkout.Session.retrieve(session.id, expand=DJSTRIPE_SESSION_EXPAND)

    assert retrieved.id == session.id
    assert retrieved.line_items.object == "list"
    assert retrieved.line_items.has_more is False
    assert retrieved.line_items.url == f"/v1/checkout/sessions/{session.id}/line_items"
    [item] = retrieved.line_items.data
    assert (item.description, item.quantity, item.amount_total) == ("Breathwork circle", 2, 5000)
    assert (item.price.unit_amount, item.price.currency) == (2500, "eur")
    assert item.discounts == []
    assert retrieved.total_details.breakdown.to_dict() == {"discounts": [], "taxes": []}
    # The library sends lists as indexed keys (expand[0]=...), not expand[]=...
    [request] = fake_stripe.calls("GET", f"/v1/checkout/sessions/{session.id}")
    assert request.params == {"expand": DJSTRIPE_SESSION_EXPAND}


def test_plain_http_form_with_brackets_is_parsed_into_nested_params(fake_stripe):
    body = (
        "mode=payment&success_url=https%3A%2F%2Fahoum.example%2Fpaid"
        "&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=1200"
        "&line_items[0][price_data][product_data][name]=Yoga&line_items[0][quantity]=3"
        "&metadata[booking_id]=7&metadata[0]=zero&expand[]=line_items"
    )
    response = requests.post(
        f"{fake_stripe.url}/v1/checkout/sessions",
        data=body,
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.headers["Request-Id"].startswith("req_")
    assert response.json()["line_items"]["data"][0]["amount_total"] == 3600
    assert fake_stripe.requests[-1].params == {
        "mode": "payment",
        "success_url": "https://ahoum.example/paid",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "1200",
                    "product_data": {"name": "Yoga"},
                },
                "quantity": "3",
            }
        ],
        "metadata": {"booking_id": "7", "0": "zero"},
        "expand": ["line_items"],
    }
    query = requests.get(
        f"{fake_stripe.url}/v1/checkout/sessions/{response.json()['id']}?expand[]=line_items",
        headers=AUTH,
        timeout=5,
    )
    assert query.json()["line_items"]["data"][0]["quantity"] == 3


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"mode": None}, "mode"),
        ({"success_url": None}, "success_url"),
        ({"line_items": None}, "line_items"),
        (
            {
                "line_items": [
                    {"price_data": {"currency": "eur", "unit_amount": 100}, "quantity": 1}
                ]
            },
            "line_items[0][price_data][product_data][name]",
        ),
        ({"line_items": [{"price": "price_123", "quantity": 1}]}, "line_items[0][price]"),
        (
            {
                "line_items": [
                    {
                        "price_data": {
                            "currency": "eur",
                            "unit_amount": "lots",
                            "product_data": {"name": "Yoga"},
                        },
                        "quantity": 1,
                    }
                ]
            },
            "line_items[0][price_data][unit_amount]",
        ),
        ({"metadata": {"booking_id": "x" * 501}}, "metadata"),
    ],
)
def test_create_session_rejects_what_stripe_rejects(fake_stripe, overrides, param):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create_session(**overrides)

    assert raised.value.http_status == 400
    assert raised.value.param == param


@pytest.mark.parametrize(
    ("lifetime", "accepted"),
    [(29 * 60, False), (31 * 60, True), (23 * 60 * 60, True), (24 * 60 * 60 + 60, False)],
)
def test_expires_at_must_be_30_minutes_to_24_hours_away(fake_stripe, lifetime, accepted):
    expires_at = int(time.time()) + lifetime
    if accepted:
        assert create_session(expires_at=expires_at).expires_at == expires_at
        return
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create_session(expires_at=expires_at)
    assert (raised.value.http_status, raised.value.param) == (400, "expires_at")


def test_default_expiry_and_timestamps_follow_the_injected_clock():
    with FakeStripe(clock=lambda: 1_800_000_000.5) as fake:
        response = requests.post(
            f"{fake.url}/v1/checkout/sessions",
            data={
                "mode": "payment",
                "success_url": "https://ahoum.example/paid",
                "line_items[0][price_data][currency]": "usd",
                "line_items[0][price_data][unit_amount]": "500",
                "line_items[0][price_data][product_data][name]": "Yoga",
                "line_items[0][quantity]": "1",
            },
            headers=AUTH,
            timeout=5,
        )
        event = fake.event("checkout.session.completed", response.json())

    assert response.json()["created"] == 1_800_000_000
    assert response.json()["expires_at"] == 1_800_000_000 + 24 * 60 * 60
    assert event["created"] == 1_800_000_000


def test_unknown_objects_are_404_resource_missing(fake_stripe):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.checkout.Session.retrieve("cs_x")

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.param == "id"
    assert raised.value.json_body["error"]["message"] == "No such checkout.session: 'cs_x'"
    assert raised.value.json_body["error"]["type"] == "invalid_request_error"
    for retrieve in (stripe.PaymentIntent, stripe.Charge, stripe.Customer, stripe.PaymentMethod):
        with pytest.raises(stripe.InvalidRequestError, match="No such"):
            retrieve.retrieve("xx_unknown")


def test_replayed_idempotency_key_returns_the_stored_session(fake_stripe):
    first = create_session(idempotency_key="booking-5-attempt-1")
    replay = create_session(idempotency_key="booking-5-attempt-1")
    other = create_session(idempotency_key="booking-5-attempt-2")

    assert replay.id == first.id
    assert replay.to_dict() == first.to_dict()
    assert replay.last_response.code == 200
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert other.id != first.id
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 3


def test_idempotency_key_reused_with_other_params_is_an_idempotency_error(fake_stripe):
    create_session(idempotency_key="booking-5-attempt-1")

    with pytest.raises(stripe.IdempotencyError) as raised:
        create_session(idempotency_key="booking-5-attempt-1", client_reference_id="booking-6")

    assert raised.value.http_status == 400
    assert raised.value.json_body["error"]["type"] == "idempotency_error"


def test_paid_session_links_the_objects_dj_stripe_fetches(fake_stripe):
    session = create_session()

    paid = fake_stripe.pay_session(session.id)

    assert (paid["status"], paid["payment_status"]) == ("complete", "paid")
    assert paid["url"] is None
    assert paid["customer"] is None  # payment mode makes no Customer unless asked to
    intent = stripe.PaymentIntent.retrieve(paid["payment_intent"])
    assert intent.id.startswith("pi_")
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 5000, 5000)
    assert intent.currency == "eur"
    charge = stripe.Charge.retrieve(intent.latest_charge, expand=["balance_transaction"])
    assert charge.id.startswith("ch_")
    assert (charge.amount, charge.amount_captured, charge.currency) == (5000, 5000, "eur")
    assert (charge.paid, charge.captured, charge.refunded, charge.amount_refunded) == (
        True,
        True,
        False,
        0,
    )
    assert (charge.status, charge.payment_intent) == ("succeeded", intent.id)
    assert charge.billing_details.email == "ada@example.com"
    transaction = charge.balance_transaction
    assert transaction.id.startswith("txn_")
    assert (transaction.amount, transaction.fee, transaction.net) == (5000, 175, 4825)
    assert (transaction.type, transaction.source) == ("charge", charge.id)
    assert stripe.BalanceTransaction.retrieve(transaction.id).net == 4825
    payment_method = stripe.PaymentMethod.retrieve(intent.payment_method)
    assert (payment_method.type, payment_method.card.last4) == ("card", "4242")
    account = stripe.Account.retrieve()
    assert (account.id, account.object) == (ACCOUNT_ID, "account")
    expanded = stripe.checkout.Session.retrieve(
        session.id, expand=["payment_intent.latest_charge.balance_transaction"]
    )
    assert expanded.payment_intent.latest_charge.balance_transaction.fee == 175


def test_customer_creation_always_makes_a_customer_when_paid(fake_stripe):
    session = create_session(customer_creation="always")

    paid = fake_stripe.pay_session(session.id)

    customer = stripe.Customer.retrieve(paid["customer"])
    assert customer.id.startswith("cus_")
    assert customer.email == "ada@example.com"
    assert stripe.PaymentIntent.retrieve(paid["payment_intent"]).customer == customer.id


def test_refund_by_payment_intent_refunds_the_whole_charge_once(fake_stripe):
    paid = fake_stripe.pay_session(create_session().id)

    refund = stripe.Refund.create(
        payment_intent=paid["payment_intent"], idempotency_key="refund-booking-5"
    )
    replay = stripe.Refund.create(
        payment_intent=paid["payment_intent"], idempotency_key="refund-booking-5"
    )

    assert refund.id.startswith("re_")
    assert (refund.object, refund.status, refund.amount, refund.currency) == (
        "refund",
        "succeeded",
        5000,
        "eur",
    )
    assert replay.id == refund.id
    charge = stripe.Charge.retrieve(refund.charge, expand=["refunds"])
    assert (charge.refunded, charge.amount_refunded) == (True, 5000)
    assert [listed.id for listed in charge.refunds.data] == [refund.id]
    refund_transaction = stripe.BalanceTransaction.retrieve(refund.balance_transaction)
    assert (refund_transaction.amount, refund_transaction.type) == (-5000, "refund")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.Refund.create(payment_intent=paid["payment_intent"], idempotency_key="refund-2")
    assert raised.value.http_status == 400
    assert raised.value.code == "charge_already_refunded"


def test_partial_refunds_leave_the_rest_for_the_next_refund(fake_stripe):
    paid = fake_stripe.pay_session(create_session().id)
    charge_id = fake_stripe.charge_for_session(paid["id"])["id"]

    partial = stripe.Refund.create(
        payment_intent=paid["payment_intent"],
        amount=1000,
        reason="requested_by_customer",
        metadata={"booking_id": 5},
    )
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        stripe.Refund.create(payment_intent=paid["payment_intent"], amount=4001)
    rest = stripe.Refund.create(charge=charge_id)

    assert (partial.amount, partial.reason) == (1000, "requested_by_customer")
    assert partial.metadata.to_dict() == {"booking_id": "5"}
    assert too_much.value.param == "amount"
    assert rest.amount == 4000
    charge = fake_stripe.charge_for_session(paid["id"])
    assert (charge["refunded"], charge["amount_refunded"]) == (True, 5000)


def test_refund_of_unknown_payment_intent_is_resource_missing_on_the_param(fake_stripe):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.Refund.create(payment_intent="pi_unknown")

    assert raised.value.http_status == 400
    assert (raised.value.code, raised.value.param) == ("resource_missing", "payment_intent")
    assert "No such payment_intent: 'pi_unknown'" in raised.value.user_message


def test_async_payment_is_unpaid_until_it_settles(fake_stripe):
    session = create_session()

    pending = fake_stripe.pay_session(session.id, async_pending=True)

    assert (pending["status"], pending["payment_status"]) == ("complete", "unpaid")
    intent = stripe.PaymentIntent.retrieve(pending["payment_intent"])
    assert intent.status == "processing"
    charge = stripe.Charge.retrieve(intent.latest_charge)
    assert (charge.status, charge.paid, charge.balance_transaction) == ("pending", False, None)
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        stripe.Refund.create(payment_intent=intent.id)

    settled = fake_stripe.settle_async(session.id, succeeded=True)

    assert (settled["status"], settled["payment_status"]) == ("complete", "paid")
    assert stripe.PaymentIntent.retrieve(intent.id).status == "succeeded"
    charge = stripe.Charge.retrieve(intent.latest_charge, expand=["balance_transaction"])
    assert (charge.status, charge.paid, charge.balance_transaction.amount) == (
        "succeeded",
        True,
        5000,
    )


def test_failed_async_payment_leaves_the_session_unpaid(fake_stripe):
    session = create_session()
    pending = fake_stripe.pay_session(session.id, async_pending=True)

    failed = fake_stripe.settle_async(session.id, succeeded=False)

    assert (failed["status"], failed["payment_status"]) == ("complete", "unpaid")
    intent = stripe.PaymentIntent.retrieve(pending["payment_intent"])
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "insufficient_funds"
    assert stripe.Charge.retrieve(intent.latest_charge).status == "failed"
    with pytest.raises(FakeStripeError):
        fake_stripe.settle_async(session.id, succeeded=True)


def test_expire_closes_an_open_session_only(fake_stripe):
    session = create_session()

    expired = stripe.checkout.Session.expire(session.id)

    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.checkout.Session.expire(session.id)
    assert raised.value.http_status == 400
    with pytest.raises(FakeStripeError, match="not open"):
        fake_stripe.pay_session(session.id)
    paid = fake_stripe.pay_session(create_session().id)
    with pytest.raises(FakeStripeError):
        fake_stripe.expire_session(paid["id"])
    assert fake_stripe.expire_session(create_session().id)["status"] == "expired"


def test_injected_failure_raises_api_error_and_saves_nothing(fake_stripe, monkeypatch):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    fake_stripe.fail_next("POST", "/v1/checkout/sessions")

    with pytest.raises(stripe.APIError) as raised:
        create_session(idempotency_key="booking-5-attempt-1")
    session = create_session(idempotency_key="booking-5-attempt-1")

    assert raised.value.http_status == 500
    assert raised.value.json_body["error"]["type"] == "api_error"
    assert "Idempotent-Replayed" not in session.last_response.headers  # ran for real this time
    assert session.status == "open"


def test_injected_failure_can_carry_a_stripe_error_code(fake_stripe):
    paid = fake_stripe.pay_session(create_session().id)
    fake_stripe.fail_next(
        "POST",
        "/v1/refunds",
        status=400,
        error_type="invalid_request_error",
        code="charge_disputed",
        message="Charge has been disputed.",
    )

    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.Refund.create(payment_intent=paid["payment_intent"])

    assert raised.value.code == "charge_disputed"
    assert fake_stripe.charge_for_session(paid["id"])["amount_refunded"] == 0
    assert stripe.Refund.create(payment_intent=paid["payment_intent"]).amount == 5000


def test_stripe_library_retries_a_5xx_with_the_same_idempotency_key(fake_stripe, monkeypatch):
    # stripe.max_network_retries is 2 by default; one retry keeps this test to ~0.5 s of backoff.
    monkeypatch.setattr(stripe, "max_network_retries", 1)
    fake_stripe.fail_next("POST", "/v1/checkout/sessions")

    session = create_session()

    assert session.status == "open"
    attempts = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert len(attempts) == 2
    assert attempts[0].idempotency_key is not None  # the library made one up
    assert attempts[0].idempotency_key == attempts[1].idempotency_key


def test_requests_need_a_test_mode_secret_key(fake_stripe):
    anonymous = requests.get(f"{fake_stripe.url}/v1/account", timeout=5)
    assert anonymous.status_code == 401

    with pytest.raises(stripe.AuthenticationError):
        stripe.Account.retrieve(api_key="sk_live_" + "A" * 24)


def test_unknown_endpoints_answer_like_stripe(fake_stripe):
    response = requests.get(f"{fake_stripe.url}/v1/products", headers=AUTH, timeout=5)

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith(
        "Unrecognized request URL (GET: /v1/products)."
    )


def test_event_signed_with_stripe_signature_header_passes_the_library_check(fake_stripe):
    paid = fake_stripe.pay_session(create_session().id)
    event = fake_stripe.event("checkout.session.completed", paid)
    payload = json.dumps(event).encode()

    verified = stripe.Webhook.construct_event(
        payload, stripe_signature_header(payload, WEBHOOK_SECRET), WEBHOOK_SECRET
    )

    assert verified.id.startswith("evt_")
    assert (verified.type, verified.data.object.id) == ("checkout.session.completed", paid["id"])
    assert verified.api_version == stripe.api_version
    assert (event["object"], event["livemode"], event["pending_webhooks"]) == ("event", False, 1)
    assert event["request"] == {"id": None, "idempotency_key": None}
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            payload, stripe_signature_header(payload, "whsec_other"), WEBHOOK_SECRET
        )
    stale = stripe_signature_header(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, WEBHOOK_SECRET)
    assert fake_stripe.event("checkout.session.completed", paid, event_id="evt_1")["id"] == "evt_1"


def test_charge_refunded_event_carries_the_refunded_charge(fake_stripe):
    paid = fake_stripe.pay_session(create_session().id)
    stripe.Refund.create(payment_intent=paid["payment_intent"], amount=2000)

    event = fake_stripe.event("charge.refunded", fake_stripe.charge_for_session(paid["id"]))

    charge = event["data"]["object"]
    assert (charge["object"], charge["amount"], charge["currency"]) == ("charge", 5000, "eur")
    assert (charge["amount_refunded"], charge["refunded"]) == (2000, False)


def test_http_controls_drive_a_fake_in_another_process(fake_stripe, monkeypatch):
    monkeypatch.setattr(stripe, "max_network_retries", 0)

    def control(verb, path, **body):
        response = requests.request(verb, f"{fake_stripe.url}/_fake/{path}", json=body, timeout=5)
        return response.status_code, response.json()

    session = create_session()

    assert control("POST", f"sessions/{session.id}/pay")[1]["payment_status"] == "paid"
    status, charge = control("GET", f"sessions/{session.id}/charge")
    assert (status, charge["amount"]) == (200, 5000)
    status, recorded = control("GET", "requests")
    assert status == 200
    assert [(r["method"], r["path"]) for r in recorded["data"]] == [
        ("POST", "/v1/checkout/sessions")
    ]
    assert recorded["data"][0]["params"]["metadata"] == {"booking_id": "5"}
    status, event = control("POST", "events", type="charge.refunded", data_object=charge)
    assert (status, event["type"], event["data"]["object"]["id"]) == (
        200,
        "charge.refunded",
        charge["id"],
    )
    pending = create_session()
    control("POST", f"sessions/{pending.id}/pay", async_pending=True)
    assert control("POST", f"sessions/{pending.id}/settle", succeeded=True)[1][
        "payment_status"
    ] == ("paid")
    assert control("POST", f"sessions/{create_session().id}/expire")[1]["status"] == "expired"
    control("POST", "fail_next", method="GET", path_prefix="/v1/account", status=503)
    with pytest.raises(stripe.APIError):
        stripe.Account.retrieve()
    assert control("POST", "fail_next", method="GET")[0] == 400  # path_prefix missing
    assert control("POST", "reset") == (200, {"reset": True})
    assert control("GET", "requests")[1]["data"] == []
    with pytest.raises(stripe.InvalidRequestError):
        stripe.checkout.Session.retrieve(session.id)


def test_hosted_payment_page_pays_and_redirects_to_success_url(fake_stripe):
    session = create_session()

    page = requests.get(session.url, timeout=5)
    redirect = requests.post(session.url, data={"action": "pay"}, allow_redirects=False, timeout=5)

    assert page.status_code == 200
    assert "Breathwork circle x 2" in page.text
    assert redirect.status_code == 303
    assert redirect.headers["Location"] == f"https://ahoum.example/paid?session={session.id}"
    assert stripe.checkout.Session.retrieve(session.id).payment_status == "paid"
    cancelled = create_session()
    redirect = requests.post(
        cancelled.url, data={"action": "cancel"}, allow_redirects=False, timeout=5
    )
    assert redirect.headers["Location"] == "https://ahoum.example/cancelled"
    assert stripe.checkout.Session.retrieve(cancelled.id).status == "open"


def test_fake_listens_on_the_port_it_is_given():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with FakeStripe(port=port) as fake:
        assert fake.url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{fake.url}/v1/account", headers=AUTH, timeout=5).ok

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/account", headers=AUTH, timeout=5)


def test_command_line_serves_until_stopped():
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes.stripe_api", "--port", "0"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=10), "the fake printed nothing within 10 s"
        line = process.stdout.readline()
        match = re.fullmatch(r"fake stripe listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        account = requests.get(f"{match.group(1)}/v1/account", headers=AUTH, timeout=5)
        assert account.json()["id"] == ACCOUNT_ID
    finally:
        process.terminate()
        process.wait(timeout=5)
