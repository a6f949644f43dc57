"""A deterministic fake of the Stripe HTTP API, served over HTTP on 127.0.0.1.

The real `stripe` library talks to it once `stripe.api_base` points at `FakeStripe.url`, and
so does dj-stripe, which calls the library. It keeps Checkout Sessions, PaymentIntents,
Charges, Refunds and the objects around them in memory, answers in the shapes of
https://docs.stripe.com/api, and lets a test play the customer (`pay_session`), Stripe's
clock (`expire_session`), Stripe's outages (`fail_next`) and Stripe's webhooks (`event`,
`stripe_signature_header`).

Endpoints (requests need a test-mode secret key, as Stripe's do):

    POST /v1/checkout/sessions                    GET  /v1/account
    GET  /v1/checkout/sessions/{id}               GET  /v1/accounts/{id}
    GET  /v1/checkout/sessions/{id}/line_items    GET  /v1/payment_intents/{id}
    POST /v1/checkout/sessions/{id}/expire        GET  /v1/charges/{id}
    POST /v1/refunds                              GET  /v1/balance_transactions/{id}
    GET  /v1/refunds/{id}                         GET  /v1/customers/{id}
                                                  GET  /v1/payment_methods/{id}

Test controls over HTTP, for a fake running in another process (JSON bodies):

    GET  /_fake/requests                 POST /_fake/fail_next   {method, path_prefix, ...}
    POST /_fake/sessions/{id}/pay        POST /_fake/events      {type, data_object, event_id}
    POST /_fake/sessions/{id}/settle     POST /_fake/reset
    POST /_fake/sessions/{id}/expire     GET  /_fake/sessions/{id}/charge
    GET  /pay/{id}                       a hosted "Checkout" page whose buttons pay or cancel

Ids come from one counter, so a run is repeatable; `reset()` keeps the counter so ids (event
ids above all, which dj-stripe deduplicates) are never reused by one fake.

Run it by hand: `python -m fakes.stripe_api --port 12111`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

JSON = dict[str, Any]

#: A key the fake accepts and dj-stripe's key check (`^(sk|rk)_(test|live)_[a-zA-Z0-9]{24,}$`)
#: accepts too.
TEST_SECRET_KEY = "sk_test_AhoumFakeStripe0000000000"
ACCOUNT_ID = "acct_1AhoumFakeAccount"

# Only test-mode keys: a live key pointed at the fake by mistake fails loudly.
_TEST_KEY = re.compile(r"^(sk|rk)_test_[A-Za-z0-9]{24,}$")
# "It can be anywhere from 30 minutes to 24 hours after Checkout Session creation. By default,
# this value is 24 hours from creation." https://docs.stripe.com/api/checkout/sessions/create
_SESSION_MIN_LIFETIME = 30 * 60
_SESSION_MAX_LIFETIME = 24 * 60 * 60
# https://docs.stripe.com/api/metadata: 50 keys, keys up to 40 characters, values up to 500.
_METADATA_MAX_KEYS, _METADATA_MAX_KEY, _METADATA_MAX_VALUE = 50, 40, 500
_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class FakeStripeError(Exception):
    """An error answered in Stripe's shape: https://docs.stripe.com/api/errors."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param

    def body(self) -> JSON:
        error: JSON = {"type": self.error_type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def _missing(param: str) -> FakeStripeError:
    return FakeStripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def _no_such(object_name: str, object_id: str, *, param: str, status: int) -> FakeStripeError:
    # Stripe answers 404 for an unknown id in the URL and 400 for one in the parameters.
    return FakeStripeError(
        status, f"No such {object_name}: '{object_id}'", code="resource_missing", param=param
    )


def _integer(value: Any, param: str, *, minimum: int) -> int:
    if value is None or value == "":
        raise _missing(param)
    if not re.fullmatch(r"-?\d+", str(value)):
        raise FakeStripeError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )
    number = int(value)
    if number < minimum:
        raise FakeStripeError(
            400, f"This value must be greater than or equal to {minimum}.", param=param
        )
    return number


def _currency(value: Any, param: str) -> str:
    if not value:
        raise _missing(param)
    if not re.fullmatch(r"[A-Za-z]{3}", str(value)):
        raise FakeStripeError(400, f"Invalid currency: {value}.", param=param)
    # Stripe returns currencies in lower case, whatever case they were sent in.
    return str(value).lower()


def _metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """Metadata as Stripe stores it: string values, keys set to "" dropped."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise FakeStripeError(400, "Invalid object", param=param)
    metadata: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise FakeStripeError(
                400, f"Invalid value type: {param}[{key}] must be a string", param=param
            )
        if len(key) > _METADATA_MAX_KEY:
            raise FakeStripeError(
                400, f"Metadata keys can have up to {_METADATA_MAX_KEY} characters.", param=param
            )
        if len(str(item)) > _METADATA_MAX_VALUE:
            raise FakeStripeError(
                400,
                f"Metadata values can have up to {_METADATA_MAX_VALUE} characters.",
                param=param,
            )
        if item != "":
            metadata[key] = str(item)
    if len(metadata) > _METADATA_MAX_KEYS:
        raise FakeStripeError(
            400, f"Metadata can have up to {_METADATA_MAX_KEYS} keys.", param=param
        )
    return metadata


def parse_stripe_params(pairs: Iterable[tuple[str, str]]) -> JSON:
    """Nest Stripe's bracketed form keys into dicts and lists.

    `metadata[booking_id]=5` -> {"metadata": {"booking_id": "5"}};
    `line_items[0][quantity]=1` -> {"line_items": [{"quantity": "1"}]};
    `expand[]=a&expand[]=b` -> {"expand": ["a", "b"]}. Values stay strings, as on the wire.
    """
    root: JSON = {}
    for key, value in pairs:
        segments = _key_segments(key)
        node: Any = root
        for index, segment in enumerate(segments[:-1]):
            wants_list = segments[index + 1] == ""
            if segment == "" or not isinstance(node, dict):
                raise FakeStripeError(400, f"Invalid parameter nesting: {key}", param=key)
            child = node.setdefault(segment, [] if wants_list else {})
            if not isinstance(child, list if wants_list else dict):
                raise FakeStripeError(400, f"Invalid parameter nesting: {key}", param=key)
            node = child
        last = segments[-1]
        if last == "":
            node.append(value)
        elif isinstance(node, dict) and not isinstance(node.get(last), (dict, list)):
            node[last] = value
        else:
            raise FakeStripeError(400, f"Invalid parameter nesting: {key}", param=key)
    return _lists_from_indexes(root)


def _key_segments(key: str) -> list[str]:
    match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
    if match is None:
        raise FakeStripeError(400, f"Invalid parameter name: {key}", param=key)
    return [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]


def _lists_from_indexes(value: Any, name: str = "") -> Any:
    """Turn {"0": a, "1": b} into [a, b]; metadata keys that look like numbers stay keys."""
    if isinstance(value, list):
        return [_lists_from_indexes(item) for item in value]
    if not isinstance(value, dict):
        return value
    nested = {key: _lists_from_indexes(item, key) for key, item in value.items()}
    if nested and name != "metadata" and all(key.isdigit() for key in nested):
        return [nested[key] for key in sorted(nested, key=int)]
    return nested


def stripe_signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header for `payload`, signed the way Stripe signs webhooks.

    https://docs.stripe.com/webhooks#verify-manually: v1 is the hex HMAC-SHA256, keyed with the
    endpoint's secret, of "{timestamp}.{payload}".
    """
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={signed_at},v1={digest}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, as the test will want to assert on it."""

    method: str
    path: str
    params: JSON
    headers: dict[str, str]
    idempotency_key: str | None


@dataclass
class _InjectedFailure:
    method: str
    path_prefix: str
    remaining: int
    error: FakeStripeError


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]


def _json_response(status: int, body: JSON, **headers: str) -> _Response:
    return _Response(
        status,
        json.dumps(body, indent=2).encode(),
        {"Content-Type": "application/json", **headers},
    )


def _list(data: list[JSON], url: str) -> JSON:
    return {"object": "list", "data": copy.deepcopy(data), "has_more": False, "url": url}


_Handler = Callable[..., JSON]


class FakeStripe:
    """The fake Stripe API: a threaded HTTP server plus the Python controls tests use.

    Every public method is safe to call from the test while the server thread answers the
    application: one lock guards all state.
    """

    def __init__(self, port: int = 0, *, clock: Callable[[], float] = time.time) -> None:
        self._port = port
        self._clock = clock
        self._lock = threading.RLock()
        self._sequence = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        retrieve = self._retrieve
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in (
                ("POST", r"/v1/checkout/sessions", self._create_session),
                ("GET", r"/v1/checkout/sessions/([^/]+)", retrieve("checkout.session")),
                ("GET", r"/v1/checkout/sessions/([^/]+)/line_items", self._session_line_items),
                ("POST", r"/v1/checkout/sessions/([^/]+)/expire", self._expire_session),
                ("GET", r"/v1/account", self._account),
                ("GET", r"/v1/accounts/([^/]+)", self._account),
                ("GET", r"/v1/payment_intents/([^/]+)", retrieve("payment_intent")),
                ("GET", r"/v1/charges/([^/]+)", retrieve("charge")),
                ("GET", r"/v1/balance_transactions/([^/]+)", retrieve("balance_transaction")),
                ("GET", r"/v1/customers/([^/]+)", retrieve("customer")),
                ("GET", r"/v1/payment_methods/([^/]+)", retrieve("payment_method")),
                ("POST", r"/v1/refunds", self._create_refund),
                ("GET", r"/v1/refunds/([^/]+)", retrieve("refund")),
            )
        ]
        # Fields Stripe leaves out of an object unless asked for with `expand`
        # (https://docs.stripe.com/api/expanding_objects), keyed by the type of the object the
        # expansion starts from and the dotted path from it.
        self._includable: dict[tuple[str, str], Callable[[JSON], Any]] = {
            ("checkout.session", "line_items"): lambda session: _list(
                self._line_items[session["id"]],
                f"/v1/checkout/sessions/{session['id']}/line_items",
            ),
            ("checkout.session", "line_items.data.discounts"): lambda item: [],
            ("checkout.session", "total_details.breakdown"): lambda totals: {
                "discounts": [],
                "taxes": [],
            },
            ("charge", "refunds"): lambda charge: _list(
                [
                    refund
                    for refund in self._objects.values()
                    if refund["object"] == "refund" and refund["charge"] == charge["id"]
                ][::-1],
                f"/v1/charges/{charge['id']}/refunds",
            ),
        }
        self._controls: list[tuple[str, re.Pattern[str], Callable[..., JSON]]] = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in (
                ("GET", r"/_fake/requests", self._control_requests),
                ("POST", r"/_fake/sessions/([^/]+)/pay", self._control_pay),
                ("POST", r"/_fake/sessions/([^/]+)/settle", self._control_settle),
                ("POST", r"/_fake/sessions/([^/]+)/expire", self._control_expire),
                ("GET", r"/_fake/sessions/([^/]+)/charge", self._control_charge),
                ("POST", r"/_fake/fail_next", self._control_fail_next),
                ("POST", r"/_fake/events", self._control_event),
                ("POST", r"/_fake/reset", self._control_reset),
            )
        ]
        self._clear()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        """Listen on 127.0.0.1 (on `port`, or a free one) in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeStripe is already running")
        self._server = _Server(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits at most this long
            name=f"fake-stripe-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeStripe is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- inspection and controls -------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every /v1 request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """The recorded requests with this method whose path starts with `path_prefix`."""
        return [
            request
            for request in self.requests
            if request.method == method.upper() and request.path.startswith(path_prefix)
        ]

    def reset(self) -> None:
        """Forget every object, request, idempotency key and injected failure."""
        with self._lock:
            self._clear()

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int = 500,
        times: int = 1,
        error_type: str = "api_error",
        code: str | None = None,
        message: str = "Something went wrong on Stripe's end (injected by FakeStripe.fail_next).",
    ) -> None:
        """Answer the next `times` matching requests with this error, doing nothing else.

        The failure is not saved against the request's idempotency key, so a retry with the
        same key runs for real. Note that the stripe library retries 409 and 5xx answers by
        itself (`stripe.max_network_retries`, 2 by default, same Idempotency-Key).
        """
        with self._lock:
            self._failures.append(
                _InjectedFailure(
                    method=method.upper(),
                    path_prefix=path_prefix,
                    remaining=times,
                    error=FakeStripeError(status, message, error_type=error_type, code=code),
                )
            )

    def pay_session(self, session_id: str, *, async_pending: bool = False) -> JSON:
        """Play the customer paying an open Checkout Session; return the session.

        With `async_pending`, pay with a delayed method (SEPA Direct Debit): the session is
        complete but unpaid and the PaymentIntent processing until `settle_async`.
        https://docs.stripe.com/payments/checkout/how-checkout-works#lifecycle
        """
        with self._lock:
            session = self._get("checkout.session", session_id)
            now = self._now()
            if session["status"] != "open":
                raise FakeStripeError(
                    400, f"Checkout Session {session_id} is {session['status']}, not open."
                )
            if now >= session["expires_at"]:
                raise FakeStripeError(
                    400, f"Checkout Session {session_id} passed its expires_at; expire it."
                )
            email = session["customer_email"] or "customer@example.com"
            # In payment mode Checkout makes a Customer only when asked to (customer_creation).
            customer_id = None
            if session["customer_creation"] == "always":
                customer_id = self._create_customer(email, now)["id"]
            payment_method = self._create_payment_method(
                email, customer_id, now, delayed=async_pending
            )
            intent_id = self._new_id("pi_")
            charge = self._create_charge(
                session, intent_id, payment_method, customer_id, now, pending=async_pending
            )
            self._store(
                {
                    "id": intent_id,
                    "object": "payment_intent",
                    "amount": session["amount_total"],
                    "amount_capturable": 0,
                    "amount_received": 0 if async_pending else session["amount_total"],
                    "application": None,
                    "application_fee_amount": None,
                    "canceled_at": None,
                    "cancellation_reason": None,
                    "capture_method": "automatic_async",
                    "client_secret": f"{intent_id}_secret_fake",
                    "confirmation_method": "automatic",
                    "created": now,
                    "currency": session["currency"],
                    "customer": customer_id,
                    "description": None,
                    "last_payment_error": None,
                    "latest_charge": charge["id"],
                    "livemode": False,
                    "metadata": self._intent_metadata[session_id],
                    "next_action": None,
                    "on_behalf_of": None,
                    "payment_method": payment_method["id"],
                    "payment_method_types": [payment_method["type"]],
                    "receipt_email": None,
                    "setup_future_usage": None,
                    "shipping": None,
                    "statement_descriptor": None,
                    "status": "processing" if async_pending else "succeeded",
                    "transfer_data": None,
                    "transfer_group": None,
                }
            )
            session.update(
                status="complete",
                payment_status="unpaid" if async_pending else "paid",
                payment_intent=intent_id,
                customer=customer_id,
                customer_details=self._customer_details(email),
                # "This value is only present when the session is active."
                # https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-url
                url=None,
            )
            return self._render(session, [])

    def settle_async(self, session_id: str, succeeded: bool) -> JSON:
        """Settle a delayed payment made with `pay_session(..., async_pending=True)`.

        Success marks the session paid (Stripe then sends
        checkout.session.async_payment_succeeded); failure leaves it complete and unpaid
        with the PaymentIntent back at requires_payment_method (async_payment_failed).
        """
        with self._lock:
            session = self._get("checkout.session", session_id)
            intent = self._objects.get(session["payment_intent"] or "")
            if intent is None or intent["status"] != "processing":
                raise FakeStripeError(
                    400, f"Checkout Session {session_id} has no payment awaiting settlement."
                )
            charge = self._objects[intent["latest_charge"]]
            if succeeded:
                transaction = self._create_balance_transaction(
                    charge["amount"], charge["currency"], charge["id"], "charge", self._now()
                )
                charge.update(
                    status="succeeded",
                    paid=True,
                    balance_transaction=transaction["id"],
                    outcome=_outcome(approved=True),
                )
                intent.update(status="succeeded", amount_received=intent["amount"])
                session["payment_status"] = "paid"
            else:
                failure = {
                    "code": "insufficient_funds",
                    "message": "The customer's account has insufficient funds.",
                }
                charge.update(
                    status="failed",
                    failure_code=failure["code"],
                    failure_message=failure["message"],
                    outcome=_outcome(approved=False),
                )
                intent.update(
                    status="requires_payment_method",
                    last_payment_error={"type": "card_error", "charge": charge["id"], **failure},
                )
            return self._render(session, [])

    def expire_session(self, session_id: str) -> JSON:
        """Expire an open Checkout Session, as Stripe does at `expires_at`."""
        with self._lock:
            return self._render(self._expire_session({}, session_id), [])

    def charge_for_session(self, session_id: str) -> JSON:
        """The charge of a paid session, e.g. to build a `charge.refunded` event."""
        with self._lock:
            session = self._get("checkout.session", session_id)
            intent = self._objects.get(session["payment_intent"] or "")
            if intent is None:
                raise FakeStripeError(400, f"Checkout Session {session_id} has no payment yet.")
            return self._render(self._objects[intent["latest_charge"]], [])

    def event(self, type: str, data_object: JSON, event_id: str | None = None) -> JSON:
        """A Stripe Event about `data_object`, as a webhook would deliver it.

        https://docs.stripe.com/api/events/object. Sign its JSON with
        `stripe_signature_header`.
        """
        with self._lock:
            return {
                "id": event_id or self._new_id("evt_"),
                "object": "event",
                "api_version": stripe.api_version,
                "created": self._now(),
                "data": {"object": copy.deepcopy(data_object)},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": type,
            }

    # -- HTTP --------------------------------------------------------------------------------

    def _respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        """Answer one HTTP request; called from the server's threads."""
        with self._lock:
            try:
                response = self._dispatch(method, target, headers, body)
            except Exception as error:
                traceback.print_exc()
                # A bug in the fake: say so, and ask the client not to retry it.
                response = _json_response(
                    500,
                    FakeStripeError(
                        500, f"FakeStripe crashed: {error!r}", error_type="api_error"
                    ).body(),
                    **{"Stripe-Should-Retry": "false"},
                )
            return _Response(
                response.status,
                response.body,
                {**response.headers, "Request-Id": self._new_id("req_")},
            )

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> _Response:
        split = urlsplit(target)
        path = split.path
        try:
            if path.startswith("/_fake/"):
                return _json_response(200, self._control(method, path, body))
            if path.startswith("/pay/"):
                return self._payment_page(method, path.removeprefix("/pay/"), body)
        except FakeStripeError as error:
            return _json_response(error.status, error.body())
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if method == "POST":
            pairs += parse_qsl(body.decode(), keep_blank_values=True)
        try:
            params = parse_stripe_params(pairs)
        except FakeStripeError as error:
            self._record(method, path, {}, headers)
            return _json_response(error.status, error.body())
        return self._api(method, path, params, headers)

    def _api(self, method: str, path: str, params: JSON, headers: dict[str, str]) -> _Response:
        self._record(method, path, params, headers)
        # Stripe only honours idempotency keys on POST: https://docs.stripe.com/api/idempotent_requests
        key = headers.get("idempotency-key") if method == "POST" else None
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        try:
            self._raise_injected_failure(method, path)
            self._authenticate(headers)
            if key is not None and key in self._idempotent:
                return self._replay(key, fingerprint)
            handler, ids = self._route(method, path)
            response = _json_response(200, self._render(handler(params, *ids), _expand(params)))
        except FakeStripeError as error:
            # "Results are only saved if an API endpoint started executing. If incoming
            # parameters failed validation [...] no idempotent result is saved." (same page);
            # every error the fake makes is of that kind.
            return _json_response(error.status, error.body())
        if key is not None:
            self._idempotent[key] = (fingerprint, response)
        return response

    def _record(self, method: str, path: str, params: JSON, headers: dict[str, str]) -> None:
        self._requests.append(
            RecordedRequest(method, path, params, headers, headers.get("idempotency-key"))
        )

    def _raise_injected_failure(self, method: str, path: str) -> None:
        for failure in self._failures:
            if failure.method == method and path.startswith(failure.path_prefix):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                raise failure.error

    @staticmethod
    def _authenticate(headers: dict[str, str]) -> None:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise FakeStripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if not _TEST_KEY.fullmatch(key):
            raise FakeStripeError(401, f"Invalid API Key provided: {key[:8]}****{key[-4:]}")

    def _replay(self, key: str, fingerprint: str) -> _Response:
        saved_fingerprint, saved = self._idempotent[key]
        if saved_fingerprint != fingerprint:
            raise FakeStripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                error_type="idempotency_error",
            )
        # Stripe replays the saved status and body and marks the answer as a replay.
        return _Response(saved.status, saved.body, {**saved.headers, "Idempotent-Replayed": "true"})

    def _route(self, method: str, path: str) -> tuple[_Handler, tuple[str, ...]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler, match.groups()
        raise FakeStripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    # -- rendering ---------------------------------------------------------------------------

    def _render(self, obj: JSON, expand: list[str]) -> JSON:
        """A copy of a stored object with the requested `expand` paths filled in."""
        rendered = copy.deepcopy(obj)
        for requested in expand:
            self._expand(rendered, requested.split("."), rendered.get("object", ""), "", requested)
        return rendered

    def _expand(
        self, node: JSON, segments: list[str], context: str, prefix: str, requested: str
    ) -> None:
        name, rest = segments[0], segments[1:]
        path = prefix + name
        include = self._includable.get((context, path))
        if include is not None and name not in node:
            node[name] = include(node)
        value = node.get(name)
        if name != "id" and isinstance(value, str) and value in self._objects:
            # An id: swap in the object it names, whose own paths apply from here on.
            value = node[name] = copy.deepcopy(self._objects[value])
            context, path = value["object"], ""
        elif name not in node or not (include is not None or value is None or rest):
            raise FakeStripeError(400, f"This property cannot be expanded ({requested}).")
        if not rest or value is None:
            return
        if not isinstance(value, dict):
            raise FakeStripeError(400, f"This property cannot be expanded ({requested}).")
        prefix = f"{path}." if path else ""
        if value.get("object") == "list" and rest[0] == "data":
            # "data" walks into every element of a list, e.g. line_items.data.discounts.
            for item in value["data"] if len(rest) > 1 else []:
                self._expand(item, rest[1:], context, f"{prefix}data.", requested)
        else:
            self._expand(value, rest, context, prefix, requested)

    # -- /v1 handlers ------------------------------------------------------------------------

    def _retrieve(self, object_name: str) -> _Handler:
        def retrieve(params: JSON, object_id: str) -> JSON:
            return self._get(object_name, object_id)

        return retrieve

    def _create_session(self, params: JSON) -> JSON:
        """https://docs.stripe.com/api/checkout/sessions/create, for one-time payments."""
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        if mode != "payment":
            raise FakeStripeError(
                400, f"FakeStripe implements mode=payment only, not {mode!r}.", param="mode"
            )
        ui_mode = params.get("ui_mode", "hosted")
        if ui_mode != "hosted":
            raise FakeStripeError(
                400, f"FakeStripe implements ui_mode=hosted only, not {ui_mode!r}.", param="ui_mode"
            )
        if not params.get("success_url"):
            raise _missing("success_url")
        customer_creation = params.get("customer_creation", "if_required")
        if customer_creation not in ("always", "if_required"):
            raise FakeStripeError(
                400,
                "Invalid customer_creation: must be one of always or if_required",
                param="customer_creation",
            )
        created = self._now()
        expires_at = self._session_expiry(params.get("expires_at"), created)
        session_id = self._new_id("cs_test_")
        line_items = self._session_items(params.get("line_items"), created)
        amount = sum(item["amount_total"] for item in line_items)
        email = params.get("customer_email")
        intent_data = params.get("payment_intent_data") or {}
        session = self._store(
            {
                "id": session_id,
                "object": "checkout.session",
                "after_expiration": None,
                "allow_promotion_codes": None,
                "amount_subtotal": amount,
                "amount_total": amount,
                "automatic_tax": {"enabled": False, "liability": None, "status": None},
                "billing_address_collection": None,
                "cancel_url": params.get("cancel_url"),
                "client_reference_id": params.get("client_reference_id"),
                "client_secret": None,
                "consent": None,
                "consent_collection": None,
                "created": created,
                "currency": line_items[0]["currency"],
                "custom_fields": [],
                "custom_text": {"shipping_address": None, "submit": None},
                "customer": None,
                "customer_creation": customer_creation,
                "customer_details": self._customer_details(email) if email else None,
                "customer_email": email,
                "discounts": [],
                "expires_at": expires_at,
                "invoice": None,
                "livemode": False,
                "locale": params.get("locale"),
                "metadata": _metadata(params.get("metadata")),
                "mode": mode,
                "payment_intent": None,
                "payment_link": None,
                "payment_method_collection": "if_required",
                "payment_method_options": {},
                "payment_method_types": params.get("payment_method_types") or ["card"],
                "payment_status": "unpaid",
                "phone_number_collection": {"enabled": False},
                "recovered_from": None,
                "setup_intent": None,
                "shipping_address_collection": None,
                "shipping_cost": None,
                "shipping_details": None,
                "shipping_options": [],
                "status": "open",
                "submit_type": params.get("submit_type"),
                "subscription": None,
                "success_url": params["success_url"],
                "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                "ui_mode": ui_mode,
                "url": f"{self.url}/pay/{session_id}",
            }
        )
        self._line_items[session_id] = line_items
        # Checkout copies payment_intent_data[metadata] onto the PaymentIntent it creates.
        self._intent_metadata[session_id] = _metadata(
            intent_data.get("metadata"), "payment_intent_data[metadata]"
        )
        return session

    def _session_expiry(self, value: Any, created: int) -> int:
        if value is None:
            return created + _SESSION_MAX_LIFETIME
        expires_at = _integer(value, "expires_at", minimum=0)
        # Measured from creation in whole seconds, so a client that asks for exactly
        # "now + 30 minutes" can be refused by a second of clock drift, on Stripe as here.
        if expires_at - created < _SESSION_MIN_LIFETIME:
            raise FakeStripeError(
                400,
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
                param="expires_at",
            )
        if expires_at - created > _SESSION_MAX_LIFETIME:
            raise FakeStripeError(
                400,
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
                param="expires_at",
            )
        return expires_at

    def _session_items(self, value: Any, created: int) -> list[JSON]:
        """Line items from inline `price_data`; the fake keeps no Price catalogue."""
        if not isinstance(value, list) or not value:
            raise _missing("line_items")
        items = []
        for index, entry in enumerate(value):
            param = f"line_items[{index}]"
            if not isinstance(entry, dict):
                raise FakeStripeError(400, "Invalid object", param=param)
            if "price" in entry:
                raise _no_such("price", entry["price"], param=f"{param}[price]", status=400)
            price_data = entry.get("price_data")
            if not isinstance(price_data, dict):
                raise _missing(f"{param}[price_data]")
            currency = _currency(price_data.get("currency"), f"{param}[price_data][currency]")
            unit_amount = _integer(
                price_data.get("unit_amount"), f"{param}[price_data][unit_amount]", minimum=0
            )
            product_data = price_data.get("product_data")
            name = product_data.get("name") if isinstance(product_data, dict) else None
            if not name:
                raise _missing(f"{param}[price_data][product_data][name]")
            quantity = _integer(entry.get("quantity"), f"{param}[quantity]", minimum=1)
            product = self._store(
                {
                    "id": self._new_id("prod_"),
                    "object": "product",
                    "active": False,
                    "created": created,
                    "description": product_data.get("description"),
                    "livemode": False,
                    "metadata": _metadata(product_data.get("metadata")),
                    "name": name,
                }
            )
            items.append(
                {
                    "id": self._new_id("li_"),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": unit_amount * quantity,
                    "amount_tax": 0,
                    "amount_total": unit_amount * quantity,
                    "currency": currency,
                    "description": name,
                    "price": {
                        "id": self._new_id("price_"),
                        "object": "price",
                        "active": False,
                        "billing_scheme": "per_unit",
                        "created": created,
                        "currency": currency,
                        "livemode": False,
                        "lookup_key": None,
                        "metadata": {},
                        "nickname": None,
                        "product": product["id"],
                        "recurring": None,
                        "tax_behavior": "unspecified",
                        "type": "one_time",
                        "unit_amount": unit_amount,
                        "unit_amount_decimal": str(unit_amount),
                    },
                    "quantity": quantity,
                }
            )
        if len({item["currency"] for item in items}) > 1:
            raise FakeStripeError(
                400, "All line items must use the same currency.", param="line_items"
            )
        return items

    def _session_line_items(self, params: JSON, session_id: str) -> JSON:
        self._get("checkout.session", session_id)
        return _list(self._line_items[session_id], f"/v1/checkout/sessions/{session_id}/line_items")

    def _expire_session(self, params: JSON, session_id: str) -> JSON:
        """https://docs.stripe.com/api/checkout/sessions/expire: open sessions only."""
        session = self._get("checkout.session", session_id)
        if session["status"] != "open":
            raise FakeStripeError(
                400,
                f"This Checkout Session is {session['status']}: only a session whose status is "
                "open can be expired.",
            )
        session.update(status="expired", url=None)
        return session

    def _account(self, params: JSON, account_id: str = ACCOUNT_ID) -> JSON:
        """The platform account (https://docs.stripe.com/api/accounts/object).

        dj-stripe fetches it for the first event it processes with a key. Like Stripe's own,
        it carries no `livemode` field.
        """
        if account_id != ACCOUNT_ID:
            raise _no_such("account", account_id, param="account", status=404)
        return {
            "id": ACCOUNT_ID,
            "object": "account",
            "business_profile": {"name": "Ahoum (fake)", "support_email": None, "url": None},
            "business_type": "company",
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "country": "US",
            "created": 1_700_000_000,
            "default_currency": "usd",
            "details_submitted": True,
            "email": "payments@ahoum.example",
            "metadata": {},
            "payouts_enabled": True,
            "settings": {
                "branding": {"icon": None, "logo": None, "primary_color": None},
                "dashboard": {"display_name": "Ahoum (fake)", "timezone": "Etc/UTC"},
            },
            "type": "standard",
        }

    def _create_refund(self, params: JSON) -> JSON:
        """https://docs.stripe.com/api/refunds/create, by payment_intent or charge."""
        charge = self._refundable_charge(params)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise FakeStripeError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = remaining
        if params.get("amount") is not None:
            amount = _integer(params["amount"], "amount", minimum=1)
            if amount > remaining:
                raise FakeStripeError(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                    f"({remaining}).",
                    param="amount",
                )
        reason = params.get("reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise FakeStripeError(
                400,
                f"Invalid reason: must be one of {', '.join(_REFUND_REASONS)}",
                param="reason",
            )
        now = self._now()
        refund_id = self._new_id("re_")
        transaction = self._create_balance_transaction(
            -amount, charge["currency"], refund_id, "refund", now
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return self._store(
            {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": transaction["id"],
                "charge": charge["id"],
                "created": now,
                "currency": charge["currency"],
                "destination_details": None,
                "metadata": _metadata(params.get("metadata")),
                "payment_intent": charge["payment_intent"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
        )

    def _refundable_charge(self, params: JSON) -> JSON:
        if params.get("payment_intent"):
            intent = self._get(
                "payment_intent", params["payment_intent"], param="payment_intent", status=400
            )
            charge = self._objects.get(intent["latest_charge"] or "")
            if charge is None or charge["status"] != "succeeded":
                raise FakeStripeError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge to "
                    "refund.",
                    param="payment_intent",
                )
            return charge
        if params.get("charge"):
            charge = self._get("charge", params["charge"], param="charge", status=400)
            if charge["status"] != "succeeded":
                raise FakeStripeError(
                    400,
                    f"Charge {charge['id']} has not succeeded: nothing to refund.",
                    param="charge",
                )
            return charge
        raise _missing("charge")

    # -- objects made when the customer pays -------------------------------------------------

    def _create_customer(self, email: str, now: int) -> JSON:
        """https://docs.stripe.com/api/customers/object, made by Checkout."""
        customer_id = self._new_id("cus_")
        return self._store(
            {
                "id": customer_id,
                "object": "customer",
                "address": None,
                "balance": 0,
                "created": now,
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": None,
                "discount": None,
                "email": email,
                "invoice_prefix": customer_id[-8:].upper(),
                "invoice_settings": {
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                "livemode": False,
                "metadata": {},
                "name": "Test Customer",
                "next_invoice_sequence": 1,
                "phone": None,
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
            }
        )

    def _create_payment_method(
        self, email: str, customer_id: str | None, now: int, *, delayed: bool
    ) -> JSON:
        """A card (Stripe's 4242 test card) or, for delayed payments, a SEPA debit."""
        method_type = "sepa_debit" if delayed else "card"
        return self._store(
            {
                "id": self._new_id("pm_"),
                "object": "payment_method",
                "allow_redisplay": "unspecified",
                "billing_details": _billing_details(email),
                method_type: _payment_method_details(method_type),
                "created": now,
                "customer": customer_id,
                "livemode": False,
                "metadata": {},
                "type": method_type,
            }
        )

    def _create_charge(
        self,
        session: JSON,
        intent_id: str,
        payment_method: JSON,
        customer_id: str | None,
        now: int,
        *,
        pending: bool,
    ) -> JSON:
        """https://docs.stripe.com/api/charges/object; a pending charge has no money yet."""
        charge_id = self._new_id("ch_")
        amount, currency = session["amount_total"], session["currency"]
        transaction_id = None
        if not pending:
            transaction_id = self._create_balance_transaction(
                amount, currency, charge_id, "charge", now
            )["id"]
        method_type = payment_method["type"]
        return self._store(
            {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "application": None,
                "application_fee": None,
                "application_fee_amount": None,
                "balance_transaction": transaction_id,
                "billing_details": payment_method["billing_details"],
                "calculated_statement_descriptor": "AHOUM",
                "captured": True,
                "created": now,
                "currency": currency,
                "customer": customer_id,
                "description": None,
                "disputed": False,
                "failure_balance_transaction": None,
                "failure_code": None,
                "failure_message": None,
                "fraud_details": {},
                "livemode": False,
                "metadata": {},
                "on_behalf_of": None,
                "outcome": None if pending else _outcome(approved=True),
                "paid": not pending,
                "payment_intent": intent_id,
                "payment_method": payment_method["id"],
                "payment_method_details": {
                    "type": method_type,
                    method_type: _payment_method_details(method_type),
                },
                "receipt_email": None,
                "receipt_number": None,
                "receipt_url": None,
                "refunded": False,
                "review": None,
                "shipping": None,
                "source": None,
                "source_transfer": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": "pending" if pending else "succeeded",
                "transfer_data": None,
                "transfer_group": None,
            }
        )

    def _create_balance_transaction(
        self, amount: int, currency: str, source: str, kind: str, now: int
    ) -> JSON:
        """https://docs.stripe.com/api/balance_transactions/object.

        Charges pay Stripe's standard card fee (2.9% + 30 minor units,
        https://stripe.com/pricing) so `net` differs from `amount`; refunds carry no fee.
        """
        fee = round(amount * 0.029) + 30 if kind == "charge" else 0
        fee_details = [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        return self._store(
            {
                "id": self._new_id("txn_"),
                "object": "balance_transaction",
                "amount": amount,
                "available_on": now + 2 * 24 * 60 * 60,
                "created": now,
                "currency": currency,
                "description": None,
                "exchange_rate": None,
                "fee": fee,
                "fee_details": fee_details if fee else [],
                "net": amount - fee,
                "reporting_category": kind,
                "source": source,
                "status": "pending",
                "type": kind,
            }
        )

    @staticmethod
    def _customer_details(email: str) -> JSON:
        return {
            "address": None,
            "email": email,
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }

    # -- HTTP test controls ------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> JSON:
        try:
            arguments = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError as error:
            raise FakeStripeError(400, f"Body is not JSON: {error}") from error
        for control_method, pattern, handler in self._controls:
            match = pattern.fullmatch(path)
            if match and control_method == method:
                try:
                    return handler(arguments, *match.groups())
                except (KeyError, TypeError) as error:
                    raise FakeStripeError(400, f"Bad arguments for {path}: {error!r}") from error
        raise FakeStripeError(404, f"Unrecognized test control ({method}: {path}).")

    def _control_requests(self, arguments: JSON) -> JSON:
        return {"object": "list", "data": [asdict(request) for request in self._requests]}

    def _control_pay(self, arguments: JSON, session_id: str) -> JSON:
        return self.pay_session(session_id, async_pending=bool(arguments.get("async_pending")))

    def _control_settle(self, arguments: JSON, session_id: str) -> JSON:
        return self.settle_async(session_id, succeeded=bool(arguments["succeeded"]))

    def _control_expire(self, arguments: JSON, session_id: str) -> JSON:
        return self.expire_session(session_id)

    def _control_charge(self, arguments: JSON, session_id: str) -> JSON:
        return self.charge_for_session(session_id)

    def _control_fail_next(self, arguments: JSON) -> JSON:
        self.fail_next(**arguments)
        return {"queued": True}

    def _control_event(self, arguments: JSON) -> JSON:
        return self.event(arguments["type"], arguments["data_object"], arguments.get("event_id"))

    def _control_reset(self, arguments: JSON) -> JSON:
        self.reset()
        return {"reset": True}

    def _payment_page(self, method: str, session_id: str, body: bytes) -> _Response:
        """A stand-in for Stripe's hosted Checkout page, for browser-driven tests.

        Paying redirects to success_url with `{CHECKOUT_SESSION_ID}` filled in, as Stripe
        does (https://docs.stripe.com/payments/checkout/custom-success-page); cancelling
        redirects to cancel_url and leaves the session open.
        """
        session = self._get("checkout.session", session_id)
        if method == "POST":
            action = dict(parse_qsl(body.decode())).get("action")
            if action == "pay":
                self.pay_session(session_id)
                location = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
                return _Response(303, b"", {"Location": location})
            if action == "cancel" and session["cancel_url"]:
                return _Response(303, b"", {"Location": session["cancel_url"]})
            raise FakeStripeError(400, f"Unknown action {action!r} for this session.")
        items = "".join(
            f"<li>{html.escape(item['description'])} x {item['quantity']}</li>"
            for item in self._line_items[session_id]
        )
        page = (
            "<!doctype html><title>Fake Stripe Checkout</title>"
            f"<h1>Pay {session['amount_total']} {session['currency']} (minor units)</h1>"
            f"<ul>{items}</ul><p>Status: {session['status']}</p>"
            '<form method="post">'
            '<button name="action" value="pay">Pay</button>'
            '<button name="action" value="cancel">Cancel</button></form>'
        )
        return _Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    # -- state -------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._objects: dict[str, JSON] = {}
        self._line_items: dict[str, list[JSON]] = {}
        self._intent_metadata: dict[str, dict[str, str]] = {}
        self._requests: list[RecordedRequest] = []
        self._idempotent: dict[str, tuple[str, _Response]] = {}
        self._failures: list[_InjectedFailure] = []

    def _store(self, obj: JSON) -> JSON:
        self._objects[obj["id"]] = obj
        return obj

    def _get(
        self, object_name: str, object_id: str, *, param: str = "id", status: int = 404
    ) -> JSON:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != object_name:
            raise _no_such(object_name, object_id, param=param, status=status)
        return obj

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}fake{next(self._sequence):020d}"

    def _now(self) -> int:
        return int(self._clock())


def _expand(params: JSON) -> list[str]:
    """The `expand` parameter, sent as expand[0]=... by the library or expand[]=... by hand."""
    expand = params.get("expand", [])
    return [expand] if isinstance(expand, str) else list(expand)


def _billing_details(email: str) -> JSON:
    address = dict.fromkeys(("city", "line1", "line2", "postal_code", "state"))
    return {
        "address": {**address, "country": "US"},
        "email": email,
        "name": "Test Customer",
        "phone": None,
    }


def _payment_method_details(method_type: str) -> JSON:
    if method_type == "sepa_debit":
        return {"bank_code": "37040044", "country": "DE", "fingerprint": "fake", "last4": "3000"}
    # Stripe's 4242 4242 4242 4242 test card: https://docs.stripe.com/testing#cards
    return {
        "brand": "visa",
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": "fake",
        "funding": "credit",
        "last4": "4242",
    }


def _outcome(*, approved: bool) -> JSON:
    """https://docs.stripe.com/api/charges/object#charge_object-outcome"""
    if approved:
        return {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "network_status": "declined_by_network",
        "reason": "insufficient_funds",
        "risk_level": "normal",
        "seller_message": "The bank returned the decline code `insufficient_funds`.",
        "type": "issuer_declined",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeStripe) -> None:
        self.fake = fake
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query that can stall on some
        # machines, for a name nothing here uses.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.fake._respond(self.command, self.path, headers, body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read `FakeStripe.requests` rather than a log."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Stripe API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    arguments = parser.parse_args(argv)
    fake = FakeStripe(port=arguments.port).start()
    print(f"fake stripe listening on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
