"""Google login through allauth against the fake Google on 127.0.0.1.

Each test drives the real flow: GET /auth/google/login (allauth stores state and the PKCE
verifier in the session), the fake decides as the person would on the consent screen, and the
browser's GET of the callback makes allauth exchange the code with the fake over HTTP.
"""

from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.test import Client

from accounts.models import Role, User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from fakes.google import GoogleIdentity

pytestmark = pytest.mark.django_db

TOKEN_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}
FRONT_END = "https://app.ahoum.example"


def start(client: Client, **query: str):
    response = client.get("/auth/google/login", query)
    assert response.status_code == 302, response.content
    return response


def sign_in_with_google(client: Client, google, *, allow: bool = True, **query: str):
    """Login, the person's decision on Google's consent screen, then the callback."""
    callback_url = google.authorize_redirect(start(client, **query)["Location"], allow=allow)
    return client.get(callback_url)


def bearer(access_token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {access_token}"})


def nothing_created() -> bool:
    return not (
        User.objects.exists() or SocialAccount.objects.exists() or EmailAddress.objects.exists()
    )


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the redirect to Google --------------------------------------------------------------------


def test_login_redirects_to_google_with_state_and_pkce(client, fake_google):
    response = start(client)

    location = urlsplit(response["Location"])
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == fake_google.authorize_url
    assert query["client_id"] == fake_google.client_id
    assert query["redirect_uri"] == "http://testserver/auth/google/callback"
    assert query["response_type"] == "code"
    assert set(query["scope"].split()) == {"profile", "email"}
    assert len(query["state"]) >= 16
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43


def test_redirect_uri_is_https_behind_a_tls_proxy(client, fake_google):
    # What the platform's router sends (SECURE_PROXY_SSL_HEADER trusts X-Forwarded-Proto).
    proxy_headers = {"Host": "testserver", "X-Forwarded-Proto": "https"}

    response = client.get("/auth/google/login", headers=proxy_headers)

    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["redirect_uri"] == ["https://testserver/auth/google/callback"]


def test_login_without_google_credentials_is_503(client):
    response = client.get("/auth/google/login")

    assert response.status_code == 503
    assert response.json() == {
        "code": "google_not_configured",
        "detail": "Google login is not configured.",
    }


def test_a_second_google_app_added_in_the_admin_is_a_clear_503(client, fake_google, caplog):
    """GOOGLE_CLIENT_ID/SECRET configure the app; one added in the admin as well leaves
    allauth unable to choose, which must not be a 500."""
    SocialApp.objects.create(provider="google", name="Google", client_id="other", secret="s")

    for response in (
        client.get("/auth/google/login"),
        client.get("/auth/google/callback", {"code": "4/x", "state": "x"}),
    ):
        assert response.status_code == 503
        assert response.json() == {
            "code": "google_not_configured",
            "detail": "Google login is misconfigured: more than one Google app is set up.",
        }
    assert "Delete the Google social application in the admin" in caplog.text
    assert not User.objects.exists()


def test_callback_without_google_credentials_is_503(client):
    response = client.get("/auth/google/callback", {"code": "4/x", "state": "x"})

    assert response.status_code == 503
    assert response.json()["code"] == "google_not_configured"


# --- who signs in --------------------------------------------------------------------------------


def test_new_person_gets_an_account_and_tokens_that_authenticate(client, fake_google):
    response = sign_in_with_google(client, fake_google)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "Bearer"
    assert response["Cache-Control"] == "no-store"
    user = User.objects.get()
    assert user.email == "new@example.com"
    assert user.name == "New Person"
    assert user.role == Role.USER
    assert not user.is_staff
    assert not user.has_usable_password()
    assert SocialAccount.objects.get().user == user
    assert SocialAccount.objects.get().uid == "1234"
    me = bearer(body["access_token"]).get("/auth/me")
    assert me.status_code == 200
    assert me.json()["email"] == "new@example.com"


def test_refresh_token_from_google_login_rotates(client, fake_google, api_client):
    tokens = sign_in_with_google(client, fake_google).json()

    response = api_client.post("/auth/refresh", {"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 200


def test_returning_person_signs_in_to_the_same_account(client, fake_google):
    first = sign_in_with_google(client, fake_google)
    # The same Google account (sub) with a changed address still reaches its account.
    fake_google.identity = GoogleIdentity(email="renamed@example.com")
    second = sign_in_with_google(Client(), fake_google)

    assert first.status_code == second.status_code == 200
    assert User.objects.count() == 1
    assert SocialAccount.objects.count() == 1
    assert first.json()["refresh_token"] != second.json()["refresh_token"]
    me = bearer(second.json()["access_token"]).get("/auth/me")
    assert me.json()["email"] == "new@example.com"


def test_name_falls_back_to_given_and_family_name(client, fake_google):
    fake_google.identity = GoogleIdentity(name=None, given_name="Ada", family_name="Lovelace")

    sign_in_with_google(client, fake_google)

    assert User.objects.get().name == "Ada Lovelace"


def test_callback_leaves_no_django_session_signed_in(client, fake_google):
    sign_in_with_google(client, fake_google)

    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # to the admin's login page


def test_callback_url_used_twice_is_refused_the_second_time(client, fake_google):
    callback_url = fake_google.authorize_redirect(start(client)["Location"])

    first = client.get(callback_url)
    again = client.get(callback_url)

    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["code"] == "google_state_invalid"


def test_inactive_account_is_refused(client, fake_google):
    sign_in_with_google(client, fake_google)
    User.objects.update(is_active=False)

    response = sign_in_with_google(Client(), fake_google)

    assert response.status_code == 403
    assert response.json()["code"] == "account_inactive"


# --- linking to an account registered with a password ------------------------------------------


@pytest.mark.parametrize("google_email", ["alice@example.com", "Alice@Example.COM"])
def test_verified_google_email_links_the_existing_account_and_disables_its_password(
    client, fake_google, api_client, google_email
):
    # Whoever registered alice@example.com chose this password; /auth/register never proved
    # they own the address. They hold a refresh token too.
    registered = UserFactory(email="alice@example.com", role=Role.FACILITATOR)
    password_login = api_client.post(
        "/auth/login", {"email": "alice@example.com", "password": TEST_PASSWORD}
    ).json()
    fake_google.identity = GoogleIdentity(sub="alice-google", email=google_email)

    response = sign_in_with_google(client, fake_google)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == TOKEN_KEYS | {"notice"}
    assert body["notice"]["code"] == "password_disabled"
    assert "POST /auth/password" in body["notice"]["detail"]
    registered.refresh_from_db()
    assert User.objects.count() == 1
    assert not registered.has_usable_password()
    assert registered.role == Role.FACILITATOR  # the account is kept, not replaced
    assert SocialAccount.objects.get(uid="alice-google").user == registered
    assert bearer(body["access_token"]).get("/auth/me").json()["id"] == registered.pk
    # The password and the refresh token its holder had are both dead.
    old_password = api_client.post(
        "/auth/login", {"email": "alice@example.com", "password": TEST_PASSWORD}
    )
    old_refresh = api_client.post(
        "/auth/refresh", {"refresh_token": password_login["refresh_token"]}
    )
    assert old_password.status_code == 401
    assert old_refresh.status_code == 401


def test_linked_account_signs_in_by_google_afterwards_without_a_notice(client, fake_google):
    UserFactory(email="alice@example.com")
    fake_google.identity = GoogleIdentity(sub="alice-google", email="alice@example.com")
    sign_in_with_google(client, fake_google)

    again = sign_in_with_google(Client(), fake_google)

    assert again.status_code == 200
    assert "notice" not in again.json()
    assert User.objects.count() == 1


def test_password_set_after_linking_survives_the_next_google_login(client, fake_google):
    UserFactory(email="alice@example.com")
    fake_google.identity = GoogleIdentity(sub="alice-google", email="alice@example.com")
    tokens = sign_in_with_google(client, fake_google).json()
    new_password = "a-fresh-passphrase-of-mine-77"
    set_password = bearer(tokens["access_token"]).post(
        "/auth/password", {"new_password": new_password}, content_type="application/json"
    )

    sign_in_with_google(Client(), fake_google)

    assert set_password.status_code == 200
    assert User.objects.get().check_password(new_password)


def test_unverified_google_email_never_links(client, fake_google):
    registered = UserFactory(email="alice@example.com")
    fake_google.identity = GoogleIdentity(
        sub="someone-else", email="alice@example.com", email_verified=False
    )

    response = sign_in_with_google(client, fake_google)

    assert response.status_code == 403
    assert response.json()["code"] == "google_email_unverified"
    registered.refresh_from_db()
    assert registered.check_password(TEST_PASSWORD)
    assert not SocialAccount.objects.exists()
    assert User.objects.count() == 1


def test_unverified_google_email_creates_no_account(client, fake_google):
    fake_google.identity = GoogleIdentity(email="unverified@example.com", email_verified=False)

    response = sign_in_with_google(client, fake_google)

    assert response.status_code == 403
    assert response.json()["code"] == "google_email_unverified"
    assert nothing_created()


# --- Google's answer refused -------------------------------------------------------------------


def test_denied_consent_is_400_and_creates_nothing(client, fake_google):
    response = sign_in_with_google(client, fake_google, allow=False)

    assert response.status_code == 400
    assert response.json() == {
        "code": "google_login_cancelled",
        "detail": "Google sign-in was cancelled.",
    }
    assert nothing_created()
    assert "/token" not in [request.path for request in fake_google.requests]


@pytest.mark.parametrize(
    "state",
    [pytest.param("tampered-state-value", id="tampered"), pytest.param(None, id="missing")],
)
def test_tampered_or_missing_state_is_400_and_the_code_is_never_redeemed(
    client, fake_google, state
):
    callback_url = fake_google.authorize_redirect(start(client)["Location"])

    response = client.get(with_query(callback_url, state=state))

    assert response.status_code == 400
    assert response.json()["code"] == "google_state_invalid"
    assert set(response.json()) == {"code", "detail"}
    assert nothing_created()
    assert "/token" not in [request.path for request in fake_google.requests]


def test_state_from_another_browser_is_refused(client, fake_google):
    callback_url = fake_google.authorize_redirect(start(client)["Location"])

    response = Client().get(callback_url)  # no session: not the browser that started

    assert response.status_code == 400
    assert response.json()["code"] == "google_state_invalid"
    assert nothing_created()


def test_failing_token_exchange_is_400_and_creates_nothing(client, fake_google):
    fake_google.fail_token_exchange = True

    response = sign_in_with_google(client, fake_google)

    assert response.status_code == 400
    assert response.json()["code"] == "google_login_failed"
    assert nothing_created()


def test_unreachable_google_is_502_and_creates_nothing(client, fake_google, monkeypatch):
    from allauth.socialaccount.providers.google import views

    callback_url = fake_google.authorize_redirect(start(client)["Location"])
    monkeypatch.setattr(views.GoogleOAuth2Adapter, "access_token_url", "http://127.0.0.1:9/token")

    response = client.get(callback_url)

    assert response.status_code == 502
    assert response.json()["code"] == "google_unavailable"
    assert nothing_created()


def test_google_error_other_than_denial_is_400(client, fake_google):
    callback_url = fake_google.authorize_redirect(start(client)["Location"])

    response = client.get(with_query(callback_url, code=None, error="server_error"))

    assert response.status_code == 400
    assert response.json()["code"] == "google_login_failed"
    assert nothing_created()


def test_allauth_page_is_never_the_answer(client, fake_google, monkeypatch, caplog):
    # Were an adapter rule missing, allauth would send the person to its signup form, a page
    # this project does not mount: the answer stays our JSON error.
    from accounts.google import SocialAccountAdapter

    monkeypatch.setattr(SocialAccountAdapter, "is_auto_signup_allowed", lambda *args: False)

    response = sign_in_with_google(client, fake_google)

    assert response.status_code == 400
    assert response.json()["code"] == "google_login_failed"
    assert nothing_created()
    assert "ended without a sign-in" in caplog.text


# --- tokens for a browser front end --------------------------------------------------------------


def test_next_on_the_allow_list_receives_the_tokens_in_the_fragment(client, fake_google, settings):
    settings.GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS = [FRONT_END]

    response = sign_in_with_google(client, fake_google, next=f"{FRONT_END}/welcome?from=google")

    assert response.status_code == 302
    assert response["Cache-Control"] == "no-store"
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{FRONT_END}/welcome"
    assert location.query == "from=google"
    fragment = dict(parse_qsl(location.fragment))
    assert set(fragment) == TOKEN_KEYS
    assert bearer(fragment["access_token"]).get("/auth/me").status_code == 200


def test_next_fragment_carries_the_password_notice(client, fake_google, settings):
    settings.GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS = [FRONT_END]
    UserFactory(email="new@example.com")

    response = sign_in_with_google(client, fake_google, next=f"{FRONT_END}/")

    fragment = dict(parse_qsl(urlsplit(response["Location"]).fragment))
    assert fragment["notice"] == "password_disabled"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/steal",
        "https://app.ahoum.example@evil.example/",
        "https://app.ahoum.example.evil.example/",
        "http://app.ahoum.example/",  # scheme is part of the origin
        "https://app.ahoum.example:8443/",
        "//app.ahoum.example/",
        "/relative/path",
        "javascript:alert(1)",
        "https://app.ahoum.example\\@evil.example/",
        "https://app.ahoum.example:bad/",
    ],
)
def test_next_off_the_allow_list_is_400_and_google_is_not_asked(
    client, fake_google, settings, next_url
):
    settings.GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS = [FRONT_END]

    response = client.get("/auth/google/login", {"next": next_url})

    assert response.status_code == 400
    assert response.json()["code"] == "next_not_allowed"
    assert "next" in response.json()["fields"]
    assert "socialaccount_states" not in client.session


def test_next_is_refused_when_no_origin_is_allowed(client, fake_google):
    response = client.get("/auth/google/login", {"next": f"{FRONT_END}/"})

    assert response.status_code == 400
    assert response.json()["code"] == "next_not_allowed"
