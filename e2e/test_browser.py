"""The admin, the back office and the API docs in a real browser (Debian's Chromium).

Screenshots land in artifacts/e2e/screenshots/ for CI to keep.
"""

import os

import pytest
from playwright.sync_api import sync_playwright

from accounts.tests.test_google_browser import CHROMIUM, CHROMIUM_ARGS
from e2e.conftest import sign_up
from e2e.stack import ARTIFACTS, STAFF_EMAIL, STAFF_PASSWORD
from e2e.test_story import create_event, unique

SCREENSHOTS = ARTIFACTS / "screenshots"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"needs Debian's Chromium at {CHROMIUM}"
    ),
]


@pytest.fixture
def browser_page(stack):
    """A page that may only talk to our server: any other request fails the test."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)

        def only_local(route):
            if route.request.url.startswith(local_base(stack)):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        try:
            yield page
        finally:
            browser.close()
    assert not outside, f"the page asked for outside resources: {outside}"


def local_base(stack) -> str:
    # Session and CSRF cookies are Secure (production settings); Chromium keeps Secure cookies
    # for http://localhost, which it treats as a secure context.
    return stack.base_url.replace("127.0.0.1", "localhost")


def sign_in(page, url: str, email: str, password: str) -> None:
    page.goto(url)
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_staff_see_bookings_and_crm_records_in_the_admin(stack, browser_page):
    attendee = sign_up(stack, email=unique("carol"), role="user", name="Carol")
    facilitator = sign_up(stack, email=unique("dina"), role="facilitator", name="Dina")
    event = create_event(facilitator, title="Gong Bath", type="Meditation", price="0")
    assert attendee.post("/bookings/", {"event_id": event["id"]}).status_code == 201
    base = local_base(stack)

    sign_in(browser_page, f"{base}/admin/login/?next=/admin/", STAFF_EMAIL, STAFF_PASSWORD)
    browser_page.goto(f"{base}/admin/bookings/booking/?q=Gong")
    assert "Gong Bath" in browser_page.inner_text("#result_list")
    browser_page.screenshot(path=SCREENSHOTS / "admin-bookings.png", full_page=True)

    browser_page.goto(f"{base}/admin/crm/")
    assert browser_page.locator("#content").count() == 1
    assert "CRM" in browser_page.inner_text("#content")
    browser_page.screenshot(path=SCREENSHOTS / "admin-crm.png", full_page=True)


def test_facilitator_back_office_shows_only_their_events(stack, browser_page):
    email = unique("erin")
    mine = sign_up(stack, email=email, role="facilitator", name="Erin")
    create_event(mine, title="Erin's Tai Chi", type="Movement")
    other = sign_up(stack, email=unique("finn"), role="facilitator", name="Finn")
    create_event(other, title="Finn's Sound Healing", type="Meditation")
    base = local_base(stack)

    sign_in(browser_page, f"{base}/backoffice/login/?next=/backoffice/events/event/", email,
            "e2e-passphrase-" + email.split("@")[0])  # fmt: skip
    listing = browser_page.inner_text("#result_list")
    assert "Erin's Tai Chi" in listing
    assert "Finn's Sound Healing" not in listing
    browser_page.screenshot(path=SCREENSHOTS / "backoffice-events.png", full_page=True)


def test_swagger_ui_renders_from_local_assets(stack, browser_page):
    browser_page.goto(f"{local_base(stack)}/api/docs/")

    browser_page.wait_for_selector(".swagger-ui .opblock-summary-path")
    paths = browser_page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/bookings/" in path for path in paths)
    assert any("/events/filter/" in path for path in paths)
    browser_page.screenshot(path=SCREENSHOTS / "swagger-ui.png", full_page=True)
