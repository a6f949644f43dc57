"""CORS: a browser front end on an allowed origin may call the API; nobody else, and never the
admin, the back office or the Stripe webhook."""

import pytest

from ahoum.tests.test_project import PRODUCTION_ENV, manage

pytestmark = pytest.mark.django_db

FRONT_END = "https://app.ahoum.example"
ELSEWHERE = "https://evil.example"


@pytest.fixture(autouse=True)
def _front_end_allowed(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONT_END]


def preflight(client, path, origin, method="POST"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )


def cors_headers(response) -> dict:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/bookings/", "POST"),
        ("/events/", "GET"),
        ("/events/1", "PATCH"),
        ("/events/1", "DELETE"),
        ("/auth/login", "POST"),
        ("/auth/me", "GET"),
    ],
)
def test_preflight_from_an_allowed_origin_is_accepted(client, path, method):
    response = preflight(client, path, FRONT_END, method)

    assert response.status_code == 200
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == FRONT_END
    assert method in headers["access-control-allow-methods"].split(", ")
    allowed_headers = set(headers["access-control-allow-headers"].split(", "))
    assert allowed_headers == {"authorization", "content-type", "idempotency-key"}
    assert "access-control-allow-credentials" not in headers
    assert "*" not in " ".join(headers.values())


def test_a_request_from_an_allowed_origin_may_read_the_answer(client):
    response = client.get("/events/", HTTP_ORIGIN=FRONT_END)

    assert response.status_code == 200
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == FRONT_END
    assert set(headers["access-control-expose-headers"].split(", ")) == {
        "Retry-After",
        "X-Request-ID",
    }


@pytest.mark.parametrize("origin", [ELSEWHERE, "http://app.ahoum.example", "null"])
def test_preflight_from_another_origin_gets_no_cors_headers(client, origin):
    assert cors_headers(preflight(client, "/bookings/", origin)) == {}
    assert cors_headers(client.get("/events/", HTTP_ORIGIN=origin)) == {}
    # While the front end's origin, on the same paths, gets them.
    assert cors_headers(preflight(client, "/bookings/", FRONT_END))
    assert cors_headers(client.get("/events/", HTTP_ORIGIN=FRONT_END))


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/login/",
        "/admin",
        "/backoffice/",
        "/backoffice",
        "/stripe/webhook/0b6f6c3e-4f7e-4a53-9d1e-0a8c7f1f2b9e",
    ],
)
def test_admin_back_office_and_stripe_webhook_get_no_cors_headers(client, path):
    assert cors_headers(preflight(client, path, FRONT_END)) == {}
    assert cors_headers(client.get(path, HTTP_ORIGIN=FRONT_END)) == {}
    assert cors_headers(client.post(path, {}, HTTP_ORIGIN=FRONT_END)) == {}
    # While the API beside them answers the same origin.
    assert cors_headers(preflight(client, "/events/", FRONT_END))


# --- Settings -------------------------------------------------------------------------------


def cors_allowed_origins(**environment: str):
    return manage(
        "shell",
        "-c",
        "from django.conf import settings; print(','.join(settings.CORS_ALLOWED_ORIGINS))",
        env=PRODUCTION_ENV | environment,
    )


def test_allowed_origins_default_to_the_google_login_front_ends():
    result = cors_allowed_origins(
        GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS="https://app.ahoum.example,https://m.ahoum.example"
    )

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip().splitlines()[-1]
        == "https://app.ahoum.example,https://m.ahoum.example"
    )


def test_allowed_origins_come_from_their_own_variable_when_set():
    result = cors_allowed_origins(
        GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS="https://app.ahoum.example",
        CORS_ALLOWED_ORIGINS="https://other.ahoum.example",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "https://other.ahoum.example"


@pytest.mark.parametrize("value", ["*", "https://*.ahoum.example"])
def test_a_wildcard_origin_is_refused(value):
    result = cors_allowed_origins(CORS_ALLOWED_ORIGINS=value)

    assert result.returncode != 0
    assert "wildcard" in result.stderr
