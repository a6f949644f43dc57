import json
import time

import pytest
import requests

from e2e.stack import STRIPE_WEBHOOK_SECRET, Stack
from fakes.stripe_api import stripe_signature_header


@pytest.fixture(scope="session")
def stack():
    running = Stack().start()
    try:
        yield running
    finally:
        running.stop()


class Api:
    """A client of the API over HTTP, as a mobile app or Postman would be."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=15, **kwargs)

    def post(self, path: str, body: dict | None = None, **kwargs) -> requests.Response:
        return self.session.post(self.base_url + path, json=body or {}, timeout=15, **kwargs)


def sign_up(stack: Stack, *, email: str, role: str, name: str) -> Api:
    anonymous = Api(stack.base_url)
    password = "e2e-passphrase-" + email.split("@")[0]
    body = {"email": email, "password": password, "name": name, "role": role}
    assert anonymous.post("/auth/register", body).status_code == 201
    login = anonymous.post("/auth/login", {"email": email, "password": password})
    assert login.status_code == 200, login.text
    return Api(stack.base_url, login.json()["access_token"])


def pay_with_stripe(stack: Stack, session_id: str) -> requests.Response:
    """The person pays on Stripe's page; Stripe sends the signed webhook."""
    session = requests.post(f"{stack.stripe_url}/_fake/sessions/{session_id}/pay", timeout=5)
    event = requests.post(
        f"{stack.stripe_url}/_fake/events",
        json={"type": "checkout.session.completed", "data_object": session.json()},
        timeout=5,
    ).json()
    payload = json.dumps(event).encode()
    signature = stripe_signature_header(payload, STRIPE_WEBHOOK_SECRET, int(time.time()))
    return requests.post(
        stack.webhook_url,
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        timeout=15,
    )
