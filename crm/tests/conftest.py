"""CRM test helpers. Signatures are computed here with hmac/hashlib directly, never with
`crm.signing`, so the tests check the scheme rather than the code against itself."""

import base64
import hashlib
import hmac
import json
import socket
import time
import uuid

import pytest
from pytest_httpserver import HTTPServer

SECRET = "test-crm-webhook-secret-0123456789"
# CRM_INBOUND_SIGNING_SECRET: the only key whose signature marks a booking paid.
SIGNING_SECRET = "test-crm-payment-signing-secret-0123456789"
FORWARD_TOKEN = "test-forward-token-0123456789"


def standard_signature(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """Standard Webhooks `v1`: base64(HMAC-SHA256(secret bytes, "{id}.{timestamp}.{body}"))."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def assert_signed(request, secret: str, *, max_skew: int = 300) -> None:
    """A received request carries the bearer token and a valid, fresh signature."""
    assert request.headers["Authorization"] == f"Bearer {secret}"
    webhook_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) <= max_skew
    expected = standard_signature(secret, webhook_id, timestamp, request.get_data())
    assert request.headers["webhook-signature"] == expected


def original_payload(**overrides) -> dict:
    payload = {
        "booking_id": 15,
        "user": {"name": "Alice", "email": "alice@example.com"},
        "event": 7,
        "facilitator_id": 3,
    }
    payload.update(overrides)
    return payload


class Sender:
    """Posts notifications to the receiver the way a CRM client would."""

    def __init__(self, client) -> None:
        self.client = client

    def post(
        self,
        payload=None,
        *,
        path: str = "/crm/webhook",
        body: bytes | None = None,
        token: str | None = SECRET,
        signed: bool = True,
        webhook_id: str | None = None,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        headers: dict | None = None,
        content_type: str = "application/json",
    ):
        if body is None:
            body = json.dumps(payload if payload is not None else original_payload()).encode()
        extra = {}
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        if signed:
            timestamp = int(time.time()) if timestamp is None else timestamp
            extra["HTTP_WEBHOOK_ID"] = webhook_id
            extra["HTTP_WEBHOOK_TIMESTAMP"] = str(timestamp)
            extra["HTTP_WEBHOOK_SIGNATURE"] = standard_signature(
                secret, webhook_id, timestamp, body
            )
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        return self.client.generic("POST", path, body, content_type=content_type, **extra)


@pytest.fixture
def crm_secret(settings) -> str:
    """One bearer secret both ways (CRM_INBOUND_SECRET unset) and the payment signing key,
    whatever the environment says."""
    settings.CRM_WEBHOOK_SECRET = SECRET
    settings.CRM_INBOUND_SECRET = ""
    settings.CRM_INBOUND_SIGNING_SECRET = SIGNING_SECRET
    return SECRET


@pytest.fixture
def sender(db, client, crm_secret) -> Sender:
    return Sender(client)


@pytest.fixture
def crm_server(settings, httpserver: HTTPServer, crm_secret) -> HTTPServer:
    """Notifications on, sent to a real HTTP server on 127.0.0.1 (pytest-httpserver)."""
    settings.CRM_WEBHOOK_URL = httpserver.url_for("/crm")
    settings.CRM_TIMEOUT_SECONDS = 2
    return httpserver


@pytest.fixture
def forward_server(settings, httpserver: HTTPServer) -> HTTPServer:
    """Forwarding on (the original's FORWARD_FLASK_URL), to a real HTTP server on 127.0.0.1."""
    settings.CRM_FORWARD_URL = httpserver.url_for("/receive")
    settings.CRM_FORWARD_TOKEN = FORWARD_TOKEN
    settings.CRM_TIMEOUT_SECONDS = 2
    return httpserver


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
