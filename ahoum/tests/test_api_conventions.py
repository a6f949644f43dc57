import re

import pytest
from django.db import DatabaseError
from rest_framework.test import APIClient

from accounts.tests.factories import TEST_PASSWORD, UserFactory
from conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/auth/login", "/auth/login/"])
def test_post_works_with_and_without_trailing_slash(api_client, path):
    UserFactory(email="a@example.com")

    response = api_client.post(path, {"email": "a@example.com", "password": TEST_PASSWORD})

    assert response.status_code == 200
    assert "access_token" in response.json()


@pytest.mark.parametrize("path", ["/auth/me", "/auth/me/", "/healthz", "/healthz/"])
def test_get_works_with_and_without_trailing_slash(user, path):
    assert client_for(user).get(path).status_code == 200


def test_unknown_api_path_is_json_404(api_client):
    response = api_client.get("/no/such/thing")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_wrong_method_is_json_405(api_client):
    response = api_client.delete("/auth/login")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert "DELETE" in response.json()["detail"]


def test_malformed_json_is_400_parse_error(api_client):
    response = api_client.post("/auth/login", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.urls("ahoum.tests.crash_urls")
def test_unexpected_error_is_json_500_without_stack_trace():
    client = APIClient(raise_request_exception=False)

    response = client.get("/crash/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "server_error"
    body = response.content.decode()
    assert "Traceback" not in body and "sk_live" not in body and "boom" not in body


def test_admin_404_stays_html(admin_client):
    response = admin_client.get("/admin/no-such-page/")

    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


def test_healthz_ok(api_client):
    response = api_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_503_when_database_fails(api_client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def refuse(self, sql, params=None):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", refuse)

    response = api_client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_swagger_ui_is_served_from_local_static_files(api_client):
    page = api_client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    # No script or style from elsewhere (a random CSRF token may contain the letters "cdn").
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html


def test_unknown_object_is_404_not_found_with_the_stable_code(user_client):
    response = user_client.get("/bookings/987654")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.parametrize("path", ["/api/schema", "/api/schema/", "/api/docs", "/api/docs/"])
def test_schema_and_docs_with_and_without_trailing_slash(api_client, path):
    assert api_client.get(path).status_code == 200


@pytest.mark.parametrize("page_size", ["²", "٣", "0", "-1", "1e3", "9" * 40])
def test_a_page_size_that_is_not_a_plain_whole_number_is_a_400_naming_it(api_client, page_size):
    response = api_client.get("/events", {"page_size": page_size})

    assert response.status_code == 400
    assert response.json()["fields"]["page_size"]
