"""Google login in a real browser: headless Chromium (Debian's package, never a downloaded one)
driven by Playwright, against a live server and the fake Google's consent page."""

import os

import pytest
import requests
from playwright.sync_api import sync_playwright

from accounts.models import User

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium; CI installs it)",
    ),
]


def test_browser_signs_in_through_the_consent_page_and_the_token_works(live_server, fake_google):
    # The session cookie carrying allauth's state stays Secure, as in production: Chromium
    # treats http://localhost as a secure context and sends it back to the live server.
    #
    # No database calls inside this block: Playwright's sync API runs an event loop in this
    # thread, where Django refuses synchronous ORM calls. The live server has its own thread.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/auth/google/login")
            assert page.url.startswith(fake_google.authorize_url)
            assert page.inner_text("#email") == "new@example.com"

            with page.expect_response(lambda answer: "/auth/google/callback" in answer.url) as info:
                page.click("#allow")
            callback = info.value
            assert callback.status == 200, callback.text()
            tokens = callback.json()
        finally:
            browser.close()

    me = requests.get(
        f"{live_server.url}/auth/me",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "new@example.com"
    assert User.objects.get(email="new@example.com").name == "New Person"
