"""pytest fixtures for the fakes. Register with `pytest_plugins = ["fakes.pytest_fixtures"]`."""

from collections.abc import Iterator

import pytest
import stripe

from fakes.stripe_api import TEST_SECRET_KEY, FakeStripe


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    """A running FakeStripe that the `stripe` library (and dj-stripe through it) calls.

    `stripe.api_base` is read on every request, so patching it is enough. dj-stripe passes
    its own key (the STRIPE_TEST_SECRET_KEY setting) with each call rather than
    `stripe.api_key`; the fake accepts any well-formed test-mode key.
    """
    with FakeStripe() as fake:
        monkeypatch.setattr(stripe, "api_base", fake.url)
        monkeypatch.setattr(stripe, "api_key", TEST_SECRET_KEY)
        yield fake
