"""The fake Google speaks OAuth 2.0 / OpenID Connect the way allauth's Google provider expects.

Each test drives the fake over HTTP with `requests`, sending what allauth 65.x sends
(`allauth/socialaccount/providers/oauth2/client.py`): the same authorization query, the same
form-encoded token request with the PKCE verifier, and the same checks on the ID token.
No database.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import selectors
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography import x509

from fakes.google import (
    EMAIL_SCOPE_URL,
    ISSUER,
    PROFILE_SCOPE_URL,
    AuthorizeError,
    FakeGoogle,
    GoogleIdentity,
)

TIMEOUT = 5
REDIRECT_URI = "http://testserver/accounts/google/login/callback/"
STATE = "state-123"


@pytest.fixture
def google():
    with FakeGoogle() as fake:
        yield fake


def pkce_pair() -> tuple[str, str]:
    """A verifier and its S256 challenge, made the way allauth's generate_code_challenge()
    makes them (`allauth/socialaccount/providers/oauth2/utils.py`)."""
    verifier = secrets.token_urlsafe(96)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_query(google: FakeGoogle, challenge: str | None, **overrides: Any) -> dict:
    """What allauth puts on the authorization URL; an override of None drops the key."""
    query = {
        "client_id": google.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "profile email",
        "response_type": "code",
        "state": STATE,
        "code_challenge": challenge,
        "code_challenge_method": "S256" if challenge else None,
    }
    query.update(overrides)
    return {key: value for key, value in query.items() if value is not None}


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def obtain_code(google: FakeGoogle, challenge: str | None, **overrides: Any) -> str:
    query = authorization_query(google, challenge, auto="allow", **overrides)
    response = requests.get(
        google.authorize_url, params=query, allow_redirects=False, timeout=TIMEOUT
    )
    params = redirect_params(response)
    assert params["state"] == STATE
    return params["code"]


def redeem(google: FakeGoogle, code: str, verifier: str | None, **overrides: Any):
    """The token request exactly as allauth's OAuth2Client.get_access_token() sends it."""
    form = {
        "redirect_uri": REDIRECT_URI,
        "grant_type": "authorization_code",
        "code": code,
        "client_id": google.client_id,
        "client_secret": google.client_secret,
        "code_verifier": verifier,
    }
    form.update(overrides)
    form = {key: value for key, value in form.items() if value is not None}
    return requests.post(google.token_url, data=form, timeout=TIMEOUT)


def tokens(google: FakeGoogle) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    response = redeem(google, obtain_code(google, challenge), verifier)
    assert response.status_code == 200, response.text
    return response.json()


def decode_like_allauth_redirect_flow(google: FakeGoogle, id_token: str) -> dict[str, Any]:
    """allauth's jwtkit.verify_and_decode() with verify_signature=False: the token came
    straight from the token endpoint, so only iss, aud and exp are checked."""
    return jwt.decode(
        id_token,
        key="",
        options={
            "verify_signature": False,
            "verify_iss": True,
            "verify_aud": True,
            "verify_exp": True,
        },
        issuer=ISSUER,
        audience=google.client_id,
    )


def verify_like_allauth_one_tap(google: FakeGoogle, id_token: str) -> dict[str, Any]:
    """allauth's jwtkit.verify_and_decode() with the signature checked against CERTS_URL,
    looked up by kid as lookup_kid_pem_x509_certificate() does."""
    header = jwt.get_unverified_header(id_token)
    certs = requests.get(google.certs_url, timeout=TIMEOUT).json()
    public_key = x509.load_pem_x509_certificate(certs[header["kid"]].encode()).public_key()
    return jwt.decode(
        id_token,
        key=public_key,
        algorithms=[header["alg"]],
        issuer=ISSUER,
        audience=google.client_id,
    )


class ConsentForm(HTMLParser):
    """Reads the consent page the way a browser would: the form, its hidden inputs and the
    buttons by id."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.buttons: dict[str, dict[str, str]] = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = attributes["action"]
        elif tag == "input" and attributes.get("type") == "hidden":
            self.hidden[attributes["name"]] = attributes["value"]
        elif tag == "button":
            self.buttons[attributes["id"]] = attributes

    def click(self, google: FakeGoogle, button_id: str) -> requests.Response:
        button = self.buttons[button_id]
        return requests.post(
            google.url + self.action,
            data={**self.hidden, button["name"]: button["value"]},
            allow_redirects=False,
            timeout=TIMEOUT,
        )


def consent_page(google: FakeGoogle, challenge: str | None = None) -> ConsentForm:
    response = requests.get(
        google.authorize_url, params=authorization_query(google, challenge), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    return ConsentForm(response.text)


# -- authorization: the consent page ----------------------------------------------------------


def test_consent_page_allow_redirects_back_with_a_code_and_the_state(google):
    page = consent_page(google)

    assert set(page.buttons) == {"allow", "deny"}
    params = redirect_params(page.click(google, "allow"))
    assert params["state"] == STATE
    assert params["code"]
    assert "error" not in params


def test_consent_page_deny_redirects_back_with_access_denied(google):
    params = redirect_params(consent_page(google).click(google, "deny"))

    assert params == {"error": "access_denied", "state": STATE}


def test_consent_page_answer_counts_once(google):
    page = consent_page(google)
    page.click(google, "allow")

    replay = page.click(google, "allow")

    assert replay.status_code == 400
    assert "Location" not in replay.headers


def test_consent_page_shows_who_consents(google):
    google.identity = GoogleIdentity(email="shown@example.com")

    response = requests.get(
        google.authorize_url, params=authorization_query(google, None), timeout=TIMEOUT
    )

    assert "shown@example.com" in response.text


def test_code_from_consent_page_redeems_for_tokens(google):
    verifier, challenge = pkce_pair()
    code = redirect_params(consent_page(google, challenge).click(google, "allow"))["code"]

    response = redeem(google, code, verifier)

    assert response.status_code == 200, response.text


def test_auto_deny_redirects_without_a_page(google):
    query = authorization_query(google, None, auto="deny")
    response = requests.get(
        google.authorize_url, params=query, allow_redirects=False, timeout=TIMEOUT
    )

    assert redirect_params(response) == {"error": "access_denied", "state": STATE}


def test_redirect_uri_query_is_kept(google):
    query = authorization_query(google, None, redirect_uri=REDIRECT_URI + "?next=%2Fbookings")
    response = requests.get(
        google.authorize_url,
        params={**query, "auto": "allow"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    params = redirect_params(response)
    assert params["next"] == "/bookings"
    assert params["code"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "someone-else.apps.googleusercontent.com"}, "invalid_client"),
        ({"client_id": None}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"redirect_uri": "/relative/callback"}, "redirect_uri_mismatch"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": None}, "invalid_request"),
        ({"state": None}, "invalid_request"),
        ({"code_challenge_method": "S512"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_invalid_authorization_request_shows_an_error_page_and_never_redirects(
    google, overrides, error
):
    _, challenge = pkce_pair()
    query = authorization_query(google, challenge, auto="allow", **overrides)

    response = requests.get(
        google.authorize_url, params=query, allow_redirects=False, timeout=TIMEOUT
    )

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert f"Error 400: {error}" in response.text


def test_redirect_uri_must_be_registered_when_a_list_is_given():
    registered = "http://127.0.0.1:8000/accounts/google/login/callback/"
    with FakeGoogle(redirect_uris=[registered]) as google:
        ok = requests.get(
            google.authorize_url,
            params=authorization_query(google, None, redirect_uri=registered, auto="allow"),
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        mismatch = requests.get(
            google.authorize_url,
            params=authorization_query(google, None, auto="allow"),
            allow_redirects=False,
            timeout=TIMEOUT,
        )

    assert ok.status_code == 302
    assert ok.headers["Location"].startswith(registered + "?code=")
    assert mismatch.status_code == 400
    assert "redirect_uri_mismatch" in mismatch.text


# -- authorization without HTTP: for Django test-client tests ---------------------------------


def test_authorize_redirect_takes_the_authorization_url_allauth_answered(google):
    verifier, challenge = pkce_pair()
    login_redirect = f"{google.authorize_url}?{urlencode(authorization_query(google, challenge))}"

    callback = google.authorize_redirect(login_redirect)

    params = {key: values[0] for key, values in parse_qs(urlsplit(callback).query).items()}
    assert callback.startswith(REDIRECT_URI)
    assert params["state"] == STATE
    assert redeem(google, params["code"], verifier).status_code == 200
    assert google.requests[0].path == "/o/oauth2/v2/auth"


def test_authorize_redirect_deny(google):
    callback = google.authorize_redirect(authorization_query(google, None), allow=False)

    assert callback == f"{REDIRECT_URI}?error=access_denied&state={STATE}"


def test_authorize_redirect_raises_where_google_shows_its_error_page(google):
    with pytest.raises(AuthorizeError) as raised:
        google.authorize_redirect(authorization_query(google, None, client_id="nope"))

    assert raised.value.error == "invalid_client"


# -- token endpoint ---------------------------------------------------------------------------


def test_token_exchange_with_pkce_answers_like_google(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)

    response = redeem(google, code, verifier)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope", "id_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert set(body["scope"].split()) == {"openid", EMAIL_SCOPE_URL, PROFILE_SCOPE_URL}


def test_id_token_passes_the_checks_allauth_makes_and_carries_the_identity(google):
    google.identity = GoogleIdentity(
        sub="109876543210",
        email="ada@example.com",
        email_verified=True,
        name="Ada Lovelace",
        given_name="Ada",
        family_name="Lovelace",
        picture="https://lh3.googleusercontent.com/a/ada",
    )
    before = int(time.time())

    body = tokens(google)
    claims = decode_like_allauth_redirect_flow(google, body["id_token"])

    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == claims["azp"] == google.client_id
    assert claims["sub"] == "109876543210"
    assert claims["email"] == "ada@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Ada Lovelace"
    assert claims["given_name"] == "Ada"
    assert claims["family_name"] == "Lovelace"
    assert claims["picture"] == "https://lh3.googleusercontent.com/a/ada"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_id_token_signature_verifies_against_the_served_certificate(google):
    id_token = tokens(google)["id_token"]

    claims = verify_like_allauth_one_tap(google, id_token)

    assert claims["sub"] == "1234"


def test_id_token_is_rejected_for_another_audience(google):
    id_token = tokens(google)["id_token"]

    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(
            id_token,
            options={"verify_signature": False, "verify_aud": True},
            audience="another-client.apps.googleusercontent.com",
        )


def test_unverified_email_and_missing_names_are_reported_as_google_does(google):
    google.identity = GoogleIdentity(
        email="unverified@example.com", email_verified=False, family_name=None
    )

    claims = decode_like_allauth_redirect_flow(google, tokens(google)["id_token"])

    assert claims["email_verified"] is False
    assert "family_name" not in claims


def test_without_the_email_scope_the_id_token_has_no_email(google):
    # allauth asks only for "profile" unless SOCIALACCOUNT_QUERY_EMAIL (or a required email
    # signup field) adds "email".
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge, scope="profile")

    body = redeem(google, code, verifier).json()
    claims = decode_like_allauth_redirect_flow(google, body["id_token"])

    assert "email" not in claims
    assert claims["name"] == "New Person"
    assert set(body["scope"].split()) == {"openid", PROFILE_SCOPE_URL}


def test_nonce_is_echoed_in_the_id_token(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge, nonce="nonce-42")

    body = redeem(google, code, verifier).json()

    assert decode_like_allauth_redirect_flow(google, body["id_token"])["nonce"] == "nonce-42"


def test_refresh_token_only_with_offline_access(google):
    online = tokens(google)
    verifier, challenge = pkce_pair()
    offline = redeem(google, obtain_code(google, challenge, access_type="offline"), verifier)

    assert "refresh_token" not in online
    assert offline.json()["refresh_token"]


def test_code_without_pkce_redeems_without_a_verifier(google):
    code = obtain_code(google, None)

    response = redeem(google, code, None)

    assert response.status_code == 200, response.text


def test_plain_challenge_is_the_default_method(google):
    verifier = secrets.token_urlsafe(48)
    code = obtain_code(google, verifier, code_challenge_method=None)

    assert redeem(google, code, verifier).status_code == 200


def test_wrong_code_verifier_is_invalid_grant_and_spends_the_code(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)
    other_verifier, _ = pkce_pair()

    wrong = redeem(google, code, other_verifier)
    retry = redeem(google, code, verifier)

    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}
    assert retry.status_code == 400
    assert retry.json()["error"] == "invalid_grant"


def test_missing_code_verifier_is_invalid_grant(google):
    _, challenge = pkce_pair()

    response = redeem(google, obtain_code(google, challenge), None)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Missing code verifier.",
    }


def test_reused_code_is_invalid_grant_and_revokes_its_access_token(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)
    first = redeem(google, code, verifier)
    access_token = first.json()["access_token"]

    second = redeem(google, code, verifier)
    userinfo = requests.get(
        google.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT
    )

    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert userinfo.status_code == 401


def test_unknown_code_is_invalid_grant(google):
    response = redeem(google, "4/never-issued", None)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_redirect_uri(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)

    response = redeem(google, code, verifier, redirect_uri="http://testserver/elsewhere/")

    assert response.status_code == 400
    assert response.json()["error"] == "redirect_uri_mismatch"


def test_wrong_client_secret_is_401_invalid_client(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)

    wrong = redeem(google, code, verifier, client_secret="not-the-secret")
    then_right = redeem(google, code, verifier)

    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    # A request from an unauthenticated client does not spend the code.
    assert then_right.status_code == 200


def test_unknown_client_is_401_invalid_client(google):
    response = redeem(google, "4/whatever", None, client_id="someone-else")

    assert response.status_code == 401
    assert response.json()["error_description"] == "The OAuth client was not found."


def test_client_credentials_over_http_basic_are_accepted(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)

    response = requests.post(
        google.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(google.client_id, google.client_secret),
        timeout=TIMEOUT,
    )

    assert response.status_code == 200, response.text


def test_wrong_secret_over_http_basic_is_401_with_a_basic_challenge(google):
    response = requests.post(
        google.token_url,
        data={"grant_type": "authorization_code", "code": "4/x", "redirect_uri": REDIRECT_URI},
        auth=(google.client_id, "not-the-secret"),
        timeout=TIMEOUT,
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_unsupported_grant_type(google):
    response = redeem(google, "4/x", None, grant_type="password")

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_fail_token_exchange_refuses_good_codes_with_invalid_grant(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)
    google.fail_token_exchange = True

    refused = redeem(google, code, verifier)
    google.fail_token_exchange = False
    afterwards = redeem(google, code, verifier)

    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": "Bad Request"}
    assert afterwards.status_code == 200


# -- userinfo, keys, discovery ----------------------------------------------------------------


def test_userinfo_v2_has_the_shape_allauth_reads_by_default(google):
    access_token = tokens(google)["access_token"]

    response = requests.get(
        google.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT
    )

    assert google.userinfo_url.endswith("/oauth2/v2/userinfo")
    assert response.status_code == 200
    assert response.json() == {
        "id": "1234",
        "email": "new@example.com",
        "verified_email": True,
        "name": "New Person",
        "given_name": "New",
        "family_name": "Person",
        "picture": "https://lh3.googleusercontent.com/a/fake-picture",
    }


def test_userinfo_v3_has_openid_connect_claims(google):
    access_token = tokens(google)["access_token"]

    response = requests.get(
        google.userinfo_v3_url,
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    assert response.json()["sub"] == "1234"
    assert response.json()["email_verified"] is True


@pytest.mark.parametrize("path", ["/oauth2/v2/userinfo", "/oauth2/v3/userinfo"])
def test_userinfo_without_a_valid_token_is_401(google, path):
    missing = requests.get(google.url + path, timeout=TIMEOUT)
    made_up = requests.get(
        google.url + path, headers={"Authorization": "Bearer ya29.made-up"}, timeout=TIMEOUT
    )

    assert missing.status_code == 401
    assert made_up.status_code == 401


def test_access_token_expires_after_expires_in():
    now = [1_700_000_000.0]
    with FakeGoogle(clock=lambda: now[0]) as google:
        access_token = tokens(google)["access_token"]
        headers = {"Authorization": f"Bearer {access_token}"}
        fresh = requests.get(google.userinfo_url, headers=headers, timeout=TIMEOUT)
        now[0] += 3599
        stale = requests.get(google.userinfo_url, headers=headers, timeout=TIMEOUT)

    assert fresh.status_code == 200
    assert stale.status_code == 401


def test_jwks_publishes_the_signing_key(google):
    id_token = tokens(google)["id_token"]
    kid = jwt.get_unverified_header(id_token)["kid"]

    jwks = jwt.PyJWKClient(google.jwks_url).get_signing_key(kid)

    claims = jwt.decode(id_token, jwks.key, algorithms=["RS256"], audience=google.client_id)
    assert claims["iss"] == ISSUER


def test_discovery_document_points_at_the_fake(google):
    document = requests.get(google.discovery_url, timeout=TIMEOUT).json()

    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == google.authorize_url
    assert document["token_endpoint"] == google.token_url
    assert document["jwks_uri"] == google.jwks_url


def test_minted_id_token_verifies_like_one_tap(google):
    id_token = google.mint_id_token(GoogleIdentity(sub="42"), nonce="n-1")

    claims = verify_like_allauth_one_tap(google, id_token)

    assert claims["sub"] == "42"
    assert claims["nonce"] == "n-1"


def test_minted_id_token_can_be_expired(google):
    id_token = google.mint_id_token(issued_at=int(time.time()) - 7200)

    with pytest.raises(jwt.ExpiredSignatureError):
        verify_like_allauth_one_tap(google, id_token)


# -- controls, lifecycle, settings ------------------------------------------------------------


def test_requests_are_recorded_with_parameters_and_lower_cased_headers(google):
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)
    redeem(google, code, verifier)

    token_request = google.requests[-1]

    method, path, params, headers = token_request
    assert (method, path) == ("POST", "/token")
    assert params["code"] == code
    assert params["code_verifier"] == verifier
    assert params["client_secret"] == google.client_secret
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_unknown_path_is_404_and_wrong_method_is_405(google):
    assert requests.get(google.url + "/nope", timeout=TIMEOUT).status_code == 404
    assert requests.get(google.token_url, timeout=TIMEOUT).status_code == 405


def test_stop_closes_the_port():
    google = FakeGoogle().start()
    url = google.discovery_url
    assert requests.get(url, timeout=TIMEOUT).status_code == 200

    google.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)


def test_url_is_known_before_start_only_with_a_fixed_port():
    with pytest.raises(RuntimeError):
        _ = FakeGoogle().url
    assert FakeGoogle(port=12112).token_url == "http://127.0.0.1:12112/token"


def test_allauth_provider_settings_point_every_url_at_the_fake(google):
    provider = google.allauth_provider_settings()

    assert provider["APP"] == {
        "client_id": google.client_id,
        "secret": google.client_secret,
        "key": "",
    }
    assert provider["AUTHORIZE_URL"] == google.url + "/o/oauth2/v2/auth"
    assert provider["ACCESS_TOKEN_URL"] == google.url + "/token"
    assert provider["IDENTITY_URL"] == google.url + "/oauth2/v2/userinfo"
    assert provider["CERTS_URL"] == google.url + "/oauth2/v1/certs"
    assert provider["ID_TOKEN_ISSUER"] == ISSUER


def test_command_line_serves_until_terminated():
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes.google", "--port", "0", "--client-id", "cli-client"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first_line = _read_line_within(process, seconds=10)
        assert first_line.startswith("fake google listening on http://127.0.0.1:")
        url = first_line.rsplit(" ", 1)[1].strip()
        document = requests.get(url + "/.well-known/openid-configuration", timeout=TIMEOUT)
        assert document.json()["token_endpoint"] == url + "/token"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def _read_line_within(process: subprocess.Popen, *, seconds: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=seconds):
            raise AssertionError("the fake printed nothing in time")
    return process.stdout.readline()


# -- allauth's own client, once the project installs allauth ----------------------------------


def _allauth_installed() -> bool:
    try:
        from django.conf import settings

        return "allauth.socialaccount.providers.google" in settings.INSTALLED_APPS
    except Exception:  # settings not configured (-p no:django) or not importable
        return False


@pytest.mark.skipif(not _allauth_installed(), reason="allauth's Google provider not installed")
def test_allauth_client_and_id_token_check_accept_the_fake(google, monkeypatch):
    from allauth.socialaccount.providers.google import views
    from allauth.socialaccount.providers.oauth2.client import OAuth2Client

    google.patch_allauth(monkeypatch)
    verifier, challenge = pkce_pair()
    code = obtain_code(google, challenge)
    client = OAuth2Client(
        None,
        google.client_id,
        google.client_secret,
        "POST",
        views.GoogleOAuth2Adapter.access_token_url,
        REDIRECT_URI,
    )

    response = client.get_access_token(code, pkce_code_verifier=verifier)
    app = SimpleNamespace(client_id=google.client_id)
    unsigned = views._verify_and_decode(app, response["id_token"], verify_signature=False)
    signed = views._verify_and_decode(app, response["id_token"], verify_signature=True)

    assert unsigned["email"] == signed["email"] == "new@example.com"
    assert [request.path for request in google.requests[-2:]] == ["/token", "/oauth2/v1/certs"]
