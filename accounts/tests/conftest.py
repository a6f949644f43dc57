"""Fixtures for the accounts tests."""

import copy
from collections.abc import Iterator

import pytest

from fakes.google import FakeGoogle


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[FakeGoogle]:
    """A fake Google on 127.0.0.1 that allauth's Google provider talks to, with Google login
    configured for its client.

    allauth reads the endpoint URLs once, at import of its Google views module, so they are
    patched on its adapter (`patch_allauth`); the client id and secret are read per request
    from SOCIALACCOUNT_PROVIDERS["google"]["APP"], so a settings override is enough.
    """
    with FakeGoogle() as fake:
        fake.patch_allauth(monkeypatch)
        providers = copy.deepcopy(settings.SOCIALACCOUNT_PROVIDERS)
        providers["google"]["APP"] = {
            "client_id": fake.client_id,
            "secret": fake.client_secret,
            "key": "",
        }
        settings.SOCIALACCOUNT_PROVIDERS = providers
        yield fake
