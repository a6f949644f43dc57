"""A fake of Google's OAuth 2.0 / OpenID Connect endpoints, served over HTTP on 127.0.0.1.

django-allauth's Google provider talks to it with its own `requests` calls, and a headless
browser can click through its consent page. It answers the way Google documents:

- Web server flow: https://developers.google.com/identity/protocols/oauth2/web-server
- OpenID Connect (ID token claims, userinfo, discovery):
  https://developers.google.com/identity/openid-connect/openid-connect
- PKCE: https://developers.google.com/identity/protocols/oauth2/native-app and RFC 7636.

Everything lives on one host, under the paths Google uses on its several hosts:

    GET  /o/oauth2/v2/auth                 accounts.google.com: consent page (or ?auto=allow|deny)
    POST /o/oauth2/v2/auth/consent         the consent page's Allow / Deny buttons (fake only)
    POST /token                            oauth2.googleapis.com: code -> tokens
    GET  /oauth2/v2/userinfo               www.googleapis.com: allauth's default IDENTITY_URL
    GET  /oauth2/v3/userinfo               OIDC-shaped userinfo (what discovery advertises)
    GET  /oauth2/v1/certs                  {kid: PEM certificate}: allauth's default CERTS_URL
    GET  /oauth2/v3/certs                  the same key as a JWKS
    GET  /.well-known/openid-configuration discovery document

ID tokens are RS256-signed with a key made once per process; its certificate is served at
`/oauth2/v1/certs`, so allauth can verify signatures where it does (One Tap `login_by_token`,
headless provider-token login). In the redirect flow allauth skips the signature check
(`GoogleOAuth2Adapter._decode_id_token`, `verify_signature = not did_fetch_access_token`) but
checks `iss`, `aud` and `exp`.

Codes, access tokens and consent ids come from a counter, so runs are repeatable.

Pointing allauth at it: allauth reads SOCIALACCOUNT_PROVIDERS["google"] once, at import of
`allauth/socialaccount/providers/google/views.py`, so either build the settings from a fake
with a fixed port (`FakeGoogle(port=...).allauth_provider_settings()`) or call
`fake.patch_allauth(monkeypatch)` in a test.

Run it by hand: `python -m fakes.google --port 12112 --client-id X --client-secret Y`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import html
import itertools
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

if TYPE_CHECKING:
    import pytest

ISSUER = "https://accounts.google.com"
DEFAULT_CLIENT_ID = "fake-client-id.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "fake-secret"

AUTHORIZE_PATH = "/o/oauth2/v2/auth"
CONSENT_PATH = "/o/oauth2/v2/auth/consent"
TOKEN_PATH = "/token"
USERINFO_V2_PATH = "/oauth2/v2/userinfo"
USERINFO_V3_PATH = "/oauth2/v3/userinfo"
CERTS_PATH = "/oauth2/v1/certs"
JWKS_PATH = "/oauth2/v3/certs"
DISCOVERY_PATH = "/.well-known/openid-configuration"

# Google's ID tokens live one hour; its access tokens report expires_in=3599.
ID_TOKEN_LIFETIME = 3600
ACCESS_TOKEN_LIFETIME = 3599

# Google grants the long URL forms of the OpenID Connect scopes and always adds "openid":
# asking for "email profile" comes back as scope="openid https://...userinfo.email ...".
EMAIL_SCOPE_URL = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE_URL = "https://www.googleapis.com/auth/userinfo.profile"
_SCOPE_ALIASES = {EMAIL_SCOPE_URL: "email", PROFILE_SCOPE_URL: "profile"}
_OPENID_SCOPES = frozenset({"openid", "email", "profile"})

# RFC 7636 section 4.2: a code challenge is 43-128 characters of the unreserved set.
_CODE_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


@dataclass(frozen=True)
class GoogleIdentity:
    """The Google account that consents. Optional profile fields set to None are left out,
    as Google leaves out, say, `family_name` for an account without one."""

    sub: str = "1234"
    email: str = "new@example.com"
    email_verified: bool = True
    name: str | None = "New Person"
    given_name: str | None = "New"
    family_name: str | None = "Person"
    picture: str | None = "https://lh3.googleusercontent.com/a/fake-picture"
    # Google Workspace accounts carry their domain as `hd`; consumer accounts have none.
    hosted_domain: str | None = None

    def claims(self, scopes: Iterable[str]) -> dict[str, Any]:
        """OpenID Connect claims for these scopes: email only with "email", names and
        picture only with "profile", like Google's ID token and /oauth2/v3/userinfo."""
        granted = _normalize_scopes(scopes)
        claims: dict[str, Any] = {"sub": self.sub}
        if "email" in granted:
            claims.update(email=self.email, email_verified=self.email_verified)
        if "profile" in granted:
            claims.update(
                name=self.name,
                given_name=self.given_name,
                family_name=self.family_name,
                picture=self.picture,
            )
        if self.hosted_domain:
            claims["hd"] = self.hosted_domain
        return {key: value for key, value in claims.items() if value is not None}

    def userinfo_v2(self, scopes: Iterable[str]) -> dict[str, Any]:
        """The older /oauth2/v2/userinfo shape, which allauth reads by default: `id` for
        `sub` and `verified_email` for `email_verified`."""
        claims = self.claims(scopes)
        info = {"id": claims.pop("sub")}
        if "email_verified" in claims:
            info["verified_email"] = claims.pop("email_verified")
        return info | claims


class RecordedRequest(NamedTuple):
    """One request the fake answered. `params` merges the query string and a form body;
    header names are lower-cased because HTTP header names are case-insensitive."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class AuthorizeError(Exception):
    """An authorization request Google would refuse with its "Error 400" page instead of
    redirecting: never redirect to an unverified redirect_uri (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class _AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    state: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    offline: bool


@dataclass
class _IssuedCode:
    request: _AuthorizationRequest
    identity: GoogleIdentity


@dataclass(frozen=True)
class _AccessToken:
    identity: GoogleIdentity
    scopes: frozenset[str]
    expires_at: float


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


# An endpoint takes the merged query/form parameters and the lower-cased headers.
_Endpoint = Callable[[dict[str, str], dict[str, str]], _Response]


@dataclass(frozen=True)
class _SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str
    certificate_pem: str
    jwk: dict[str, Any]


@functools.cache
def _signing_key() -> _SigningKey:
    """One RSA key per process: generating it costs ~0.1 s, too much for every fake."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_key = private_key.public_key()
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Google's kids are 40 hex characters; a hash of the public key keeps kid and key paired.
    fingerprint = hashlib.sha256(der).hexdigest()
    kid = fingerprint[:40]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google-oauth2")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(int(fingerprint[:32], 16))  # X.509 allows at most 159 bits
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        .sign(private_key, hashes.SHA256())
    )
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True) | {"kid": kid, "alg": "RS256", "use": "sig"}
    return _SigningKey(
        private_key=private_key,
        kid=kid,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        jwk=jwk,
    )


def _normalize_scopes(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(_SCOPE_ALIASES.get(scope, scope) for scope in scopes)


def _granted_scope_string(scopes: frozenset[str]) -> str:
    """The `scope` of Google's token response: long URL forms, plus "openid"."""
    granted = {
        {"email": EMAIL_SCOPE_URL, "profile": PROFILE_SCOPE_URL}.get(scope, scope)
        for scope in scopes
    }
    if scopes & _OPENID_SCOPES:
        granted.add("openid")
    return " ".join(sorted(granted))


def _s256(value: str) -> str:
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _at_hash(access_token: str) -> str:
    # OIDC Core 3.1.3.6: left half of the SHA-256 of the access token, base64url.
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """Append params to a redirect URI, keeping any query it has (RFC 6749 section 3.1.2)."""
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit(parts._replace(query=query))


def _json(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> _Response:
    return _Response(
        status=status,
        body=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def _token_error(status: int, error: str, description: str, **headers: str) -> _Response:
    # RFC 6749 section 5.2; token responses must not be cached (section 5.1).
    return _json(
        status,
        {"error": error, "error_description": description},
        {"Cache-Control": "no-store", "Pragma": "no-cache", **headers},
    )


def _html(status: int, title: str, body: str) -> _Response:
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
    return _Response(
        status=status,
        body=page.encode("utf-8"),
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


def _error_page(error: AuthorizeError) -> _Response:
    return _html(
        HTTPStatus.BAD_REQUEST,
        "Error 400",
        f'<h1>Access blocked: this request is invalid</h1>\n<p id="error">Error 400: '
        f"{html.escape(error.error)}</p>\n<p>{html.escape(error.description)}</p>",
    )


def _redirect(location: str) -> _Response:
    return _Response(status=HTTPStatus.FOUND, headers={"Location": location})


class FakeGoogle:
    """Google's OAuth 2.0 / OpenID Connect endpoints on 127.0.0.1, for one OAuth client.

    Test controls: set `identity` to choose who consents, `fail_token_exchange = True` to make
    the token endpoint refuse every code (400 invalid_grant, what Google answers for a spent or
    expired code), and read `requests` to see what was asked.
    """

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        port: int = 0,
        redirect_uris: Iterable[str] | None = None,
        identity: GoogleIdentity | None = None,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # None accepts any absolute http(s) redirect URI, handy when the Django live server
        # picks its port; a set of URIs mimics the console's exact-match list.
        self.redirect_uris = None if redirect_uris is None else set(redirect_uris)
        self.identity = identity or GoogleIdentity()
        self.fail_token_exchange = False
        self.requests: list[RecordedRequest] = []
        self.verbose = verbose
        self._port = port
        self._clock = clock
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._consents: dict[str, tuple[_AuthorizationRequest, GoogleIdentity]] = {}
        self._codes: dict[str, _IssuedCode] = {}
        # Spent code -> access tokens it bought, revoked if the code is replayed (RFC 6749
        # section 4.1.2: "SHOULD revoke (when possible) all tokens previously issued").
        self._spent_codes: dict[str, list[str]] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[str, dict[str, _Endpoint]] = {
            AUTHORIZE_PATH: {"GET": self._authorize},
            CONSENT_PATH: {"POST": self._consent},
            TOKEN_PATH: {"POST": self._token},
            USERINFO_V2_PATH: {"GET": self._userinfo_v2},
            USERINFO_V3_PATH: {"GET": self._userinfo_v3},
            CERTS_PATH: {"GET": self._certs},
            JWKS_PATH: {"GET": self._jwks},
            DISCOVERY_PATH: {"GET": self._discovery},
        }

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 (the given port, or a free one) in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeGoogle is already started")
        self._server = _Server(("127.0.0.1", self._port), _Handler, fake=self)
        self._port = self._server.server_address[1]
        # shutdown() waits for the serve loop's next poll; the default 0.5 s poll would add
        # half a second to every test that stops a fake.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fake-google-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL; known before start() only when a fixed port was given."""
        if not self._port:
            raise RuntimeError("FakeGoogle has no port yet: start() it or pass port=")
        return f"http://127.0.0.1:{self._port}"

    @property
    def issuer(self) -> str:
        # ID tokens claim Google's real issuer, which is what allauth checks by default.
        return ISSUER

    @property
    def authorize_url(self) -> str:
        return self.url + AUTHORIZE_PATH

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def userinfo_url(self) -> str:
        """The v2 userinfo, allauth's default IDENTITY_URL (it reads `id`/`verified_email`)."""
        return self.url + USERINFO_V2_PATH

    @property
    def userinfo_v3_url(self) -> str:
        return self.url + USERINFO_V3_PATH

    @property
    def certs_url(self) -> str:
        """{kid: PEM certificate}, the format allauth's default CERTS_URL has."""
        return self.url + CERTS_PATH

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_PATH

    def allauth_provider_settings(self) -> dict[str, Any]:
        """Keys of SOCIALACCOUNT_PROVIDERS["google"] that point allauth at this fake.

        allauth reads them once, when `allauth.socialaccount.providers.google.views` is
        imported, so use this at settings load with a fixed port, or use patch_allauth().
        """
        return {
            "APP": {"client_id": self.client_id, "secret": self.client_secret, "key": ""},
            "AUTHORIZE_URL": self.authorize_url,
            "ACCESS_TOKEN_URL": self.token_url,
            "IDENTITY_URL": self.userinfo_url,
            "CERTS_URL": self.certs_url,
            "ID_TOKEN_ISSUER": ISSUER,
        }

    def patch_allauth(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point allauth's Google adapter at this fake for one test (the client id and
        secret still come from the SocialApp or the settings' "APP")."""
        from allauth.socialaccount.providers.google import views

        adapter = views.GoogleOAuth2Adapter
        monkeypatch.setattr(adapter, "authorize_url", self.authorize_url)
        monkeypatch.setattr(adapter, "access_token_url", self.token_url)
        monkeypatch.setattr(adapter, "identity_url", self.userinfo_url)
        # _verify_and_decode() reads the module global, not an adapter attribute.
        monkeypatch.setattr(views, "CERTS_URL", self.certs_url)

    # -- helpers for tests that have no browser --------------------------------------------

    def authorize_redirect(
        self, authorize_request: str | Mapping[str, str], *, allow: bool = True
    ) -> str:
        """Where Google would send the browser after the person clicks Allow (or Deny).

        `authorize_request` is the authorization URL (e.g. the Location allauth answered) or
        its query as a dict. Raises AuthorizeError where Google would show its error page.
        """
        if isinstance(authorize_request, str):
            query = dict(parse_qsl(urlsplit(authorize_request).query, keep_blank_values=True))
        else:
            query = dict(authorize_request)
        self._record("GET", AUTHORIZE_PATH, query, {})
        request = self._validate_authorization(query)
        return self._decide(request, self.identity, allow=allow)

    def mint_id_token(
        self,
        identity: GoogleIdentity | None = None,
        *,
        audience: str | None = None,
        scopes: Iterable[str] = ("openid", "email", "profile"),
        issued_at: int | None = None,
        lifetime: int = ID_TOKEN_LIFETIME,
        **extra_claims: Any,
    ) -> str:
        """An RS256 ID token signed with the key served at certs_url, as Google One Tap posts
        to allauth's login_by_token. Override claims (iss, exp, nonce...) via extra_claims."""
        identity = identity or self.identity
        now = int(self._clock()) if issued_at is None else issued_at
        audience = audience or self.client_id
        claims = {
            "iss": ISSUER,
            "azp": audience,
            "aud": audience,
            **identity.claims(scopes),
            "iat": now,
            "exp": now + lifetime,
            **extra_claims,
        }
        key = _signing_key()
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    # -- HTTP dispatch ----------------------------------------------------------------------

    def _record(
        self, method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, dict(params), dict(headers)))

    def _dispatch(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
    ) -> _Response:
        self._record(method, path, params, headers)
        handlers = self._routes.get(path)
        if handlers is None:
            return _json(HTTPStatus.NOT_FOUND, {"error": "not_found", "path": path})
        handler = handlers.get(method)
        if handler is None:
            return _json(
                HTTPStatus.METHOD_NOT_ALLOWED,
                {"error": "method_not_allowed"},
                {"Allow": ", ".join(handlers)},
            )
        return handler(params, headers)

    # -- authorization endpoint -------------------------------------------------------------

    def _validate_authorization(self, query: Mapping[str, str]) -> _AuthorizationRequest:
        client_id = query.get("client_id", "")
        if not client_id:
            raise AuthorizeError("invalid_request", "Missing required parameter: client_id")
        if client_id != self.client_id:
            raise AuthorizeError("invalid_client", "The OAuth client was not found.")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            raise AuthorizeError("invalid_request", "Missing required parameter: redirect_uri")
        parts = urlsplit(redirect_uri)
        if self.redirect_uris is not None:
            accepted = redirect_uri in self.redirect_uris
        else:
            accepted = parts.scheme in ("http", "https") and bool(parts.netloc)
        if not accepted or parts.fragment:
            raise AuthorizeError(
                "redirect_uri_mismatch",
                f"The redirect URI in the request, {redirect_uri}, does not match the ones "
                "authorized for the OAuth client.",
            )
        response_type = query.get("response_type", "")
        if not response_type:
            raise AuthorizeError("invalid_request", "Missing required parameter: response_type")
        if response_type != "code":
            # Google also knows the implicit flow; this fake only does the code flow.
            raise AuthorizeError(
                "unsupported_response_type", f"Unsupported response_type: {response_type}"
            )
        scopes = _normalize_scopes(query.get("scope", "").split())
        if not scopes:
            raise AuthorizeError("invalid_request", "Missing required parameter: scope")
        # Google only recommends `state`; allauth always sends one, so a missing state means
        # our wiring is broken and the fake says so.
        state = query.get("state", "")
        if not state:
            raise AuthorizeError("invalid_request", "Missing required parameter: state")
        code_challenge = query.get("code_challenge") or None
        method = query.get("code_challenge_method") or None
        if code_challenge is None and method is not None:
            raise AuthorizeError("invalid_request", "Missing required parameter: code_challenge")
        if code_challenge is not None:
            # RFC 7636 section 4.3 (and Google): without a method the challenge is "plain".
            method = method or "plain"
            if method not in ("S256", "plain"):
                raise AuthorizeError("invalid_request", f"Invalid code_challenge_method: {method}")
            if not _CODE_CHALLENGE.fullmatch(code_challenge):
                raise AuthorizeError("invalid_request", "Invalid code_challenge.")
        return _AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=state,
            nonce=query.get("nonce") or None,
            code_challenge=code_challenge,
            code_challenge_method=method,
            offline=query.get("access_type") == "offline",
        )

    def _decide(
        self, request: _AuthorizationRequest, identity: GoogleIdentity, *, allow: bool
    ) -> str:
        if not allow:
            # The person clicked Deny: allauth maps access_denied to "cancelled".
            return _with_query(
                request.redirect_uri, {"error": "access_denied", "state": request.state}
            )
        code = f"4/fake-code-{next(self._serial)}"
        with self._lock:
            self._codes[code] = _IssuedCode(request=request, identity=identity)
        return _with_query(request.redirect_uri, {"code": code, "state": request.state})

    def _authorize(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        query = dict(params)
        auto = query.pop("auto", None)
        if auto not in (None, "allow", "deny"):
            return _error_page(AuthorizeError("invalid_request", "auto must be allow or deny"))
        try:
            request = self._validate_authorization(query)
        except AuthorizeError as error:
            return _error_page(error)
        identity = self.identity
        if auto is not None:
            return _redirect(self._decide(request, identity, allow=auto == "allow"))
        # The consent remembers who was shown, so what the person saw is what is issued.
        consent_id = f"consent-{next(self._serial)}"
        with self._lock:
            self._consents[consent_id] = (request, identity)
        scope_list = "".join(f"<li>{html.escape(scope)}</li>" for scope in sorted(request.scopes))
        return _html(
            HTTPStatus.OK,
            "Sign in - Google Accounts (fake)",
            f"<h1>Sign in with Google (fake)</h1>\n"
            f'<p>Continue to <b id="client">{html.escape(request.client_id)}</b> as '
            f'<b id="email">{html.escape(identity.email)}</b>?</p>\n'
            f"<ul>{scope_list}</ul>\n"
            f'<form method="post" action="{CONSENT_PATH}">\n'
            f'<input type="hidden" name="consent" value="{consent_id}">\n'
            '<button type="submit" id="allow" name="decision" value="allow">Allow</button>\n'
            '<button type="submit" id="deny" name="decision" value="deny">Deny</button>\n'
            "</form>",
        )

    def _consent(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        decision = params.get("decision")
        with self._lock:
            pending = self._consents.pop(params.get("consent", ""), None)
        if pending is None or decision not in ("allow", "deny"):
            return _error_page(
                AuthorizeError("invalid_request", "Unknown or already answered consent.")
            )
        request, identity = pending
        return _redirect(self._decide(request, identity, allow=decision == "allow"))

    # -- token endpoint ---------------------------------------------------------------------

    def _token(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        if self.fail_token_exchange:
            return _token_error(HTTPStatus.BAD_REQUEST, "invalid_grant", "Bad Request")

        # Google takes client credentials in the body (what allauth sends) or as HTTP Basic
        # (RFC 6749 section 2.3.1). requests' HTTPBasicAuth does not form-encode them, and
        # Google ids and secrets need no encoding, so they are compared as sent.
        authorization = headers.get("authorization", "")
        basic = authorization[:6].lower() == "basic "
        client_id = params.get("client_id", "")
        client_secret = params.get("client_secret", "")
        if basic:
            try:
                decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
            except ValueError:
                decoded = ""
            basic_id, _, basic_secret = decoded.partition(":")
            if (client_id and client_id != basic_id) or client_secret:
                return _token_error(
                    HTTPStatus.BAD_REQUEST,
                    "invalid_request",
                    "Client authentication with more than one method.",
                )
            client_id, client_secret = basic_id, basic_secret
        if not client_id:
            return _token_error(
                HTTPStatus.BAD_REQUEST,
                "invalid_request",
                "Could not determine client ID from request.",
            )
        challenge = {"WWW-Authenticate": 'Basic realm="fake-google"'} if basic else {}
        if client_id != self.client_id:
            return _token_error(
                HTTPStatus.UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
                **challenge,
            )
        if client_secret != self.client_secret:
            return _token_error(
                HTTPStatus.UNAUTHORIZED, "invalid_client", "Unauthorized", **challenge
            )

        grant_type = params.get("grant_type", "")
        if not grant_type:
            return _token_error(
                HTTPStatus.BAD_REQUEST, "invalid_request", "Missing required parameter: grant_type"
            )
        if grant_type != "authorization_code":
            # Google also does refresh_token grants; allauth's login never asks for one.
            return _token_error(
                HTTPStatus.BAD_REQUEST,
                "unsupported_grant_type",
                f"Invalid grant_type: {grant_type}",
            )
        code = params.get("code", "")
        if not code:
            return _token_error(
                HTTPStatus.BAD_REQUEST, "invalid_request", "Missing required parameter: code"
            )

        # A code is spent by its first redemption attempt, even a failed one: a second try
        # (or a replay) gets invalid_grant, and a replay revokes what the code bought.
        with self._lock:
            issued = self._codes.pop(code, None)
            if issued is None:
                for token in self._spent_codes.get(code, []):
                    self._access_tokens.pop(token, None)
            else:
                self._spent_codes[code] = []
        if issued is None or issued.request.client_id != client_id:
            return _token_error(HTTPStatus.BAD_REQUEST, "invalid_grant", "Bad Request")
        request = issued.request

        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            return _token_error(
                HTTPStatus.BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: redirect_uri",
            )
        if redirect_uri != request.redirect_uri:
            return _token_error(HTTPStatus.BAD_REQUEST, "redirect_uri_mismatch", "Bad Request")

        verifier = params.get("code_verifier", "")
        if request.code_challenge is None:
            if verifier:
                # Not something Google documents; a verifier without a challenge means the
                # PKCE settings disagree between our login and callback, so say it loudly.
                return _token_error(
                    HTTPStatus.BAD_REQUEST,
                    "invalid_request",
                    "code_verifier sent, but the authorization request had no code_challenge.",
                )
        elif not verifier:
            return _token_error(HTTPStatus.BAD_REQUEST, "invalid_grant", "Missing code verifier.")
        else:
            expected = _s256(verifier) if request.code_challenge_method == "S256" else verifier
            if expected != request.code_challenge:
                return _token_error(
                    HTTPStatus.BAD_REQUEST, "invalid_grant", "Invalid code verifier."
                )

        return self._issue_tokens(code, issued)

    def _issue_tokens(self, code: str, issued: _IssuedCode) -> _Response:
        request = issued.request
        serial = next(self._serial)
        access_token = f"ya29.fake-access-{serial}"
        with self._lock:
            self._access_tokens[access_token] = _AccessToken(
                identity=issued.identity,
                scopes=request.scopes,
                expires_at=self._clock() + ACCESS_TOKEN_LIFETIME,
            )
            self._spent_codes[code].append(access_token)
        body: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "token_type": "Bearer",
            "scope": _granted_scope_string(request.scopes),
        }
        if request.offline:
            # access_type=offline buys a refresh token (web-server flow docs, step 5).
            body["refresh_token"] = f"1//fake-refresh-{serial}"
        if request.scopes & _OPENID_SCOPES:
            nonce = {"nonce": request.nonce} if request.nonce else {}
            body["id_token"] = self.mint_id_token(
                issued.identity,
                scopes=request.scopes,
                at_hash=_at_hash(access_token),
                **nonce,
            )
        return _json(HTTPStatus.OK, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # -- userinfo, keys, discovery ----------------------------------------------------------

    def _bearer(self, params: dict[str, str], headers: dict[str, str]) -> _AccessToken | None:
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
        else:
            # Google also accepts ?access_token=, though it discourages it.
            token = params.get("access_token", "")
        with self._lock:
            record = self._access_tokens.get(token)
        if record is None or record.expires_at <= self._clock():
            return None
        return record

    def _userinfo_v2(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        record = self._bearer(params, headers)
        if record is None:
            return _json(
                HTTPStatus.UNAUTHORIZED,
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED",
                    }
                },
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        return _json(HTTPStatus.OK, record.identity.userinfo_v2(record.scopes))

    def _userinfo_v3(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        record = self._bearer(params, headers)
        if record is None:
            return _json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        return _json(HTTPStatus.OK, record.identity.claims(record.scopes))

    def _certs(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        key = _signing_key()
        return _json(HTTPStatus.OK, {key.kid: key.certificate_pem})

    def _jwks(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        return _json(HTTPStatus.OK, {"keys": [_signing_key().jwk]})

    def _discovery(self, params: dict[str, str], headers: dict[str, str]) -> _Response:
        # The issuer stays Google's (ID tokens claim it), so a strict discovery client that
        # demands issuer == this URL will object; allauth's Google provider reads no discovery.
        return _json(
            HTTPStatus.OK,
            {
                "issuer": ISSUER,
                "authorization_endpoint": self.authorize_url,
                "token_endpoint": self.token_url,
                "userinfo_endpoint": self.userinfo_v3_url,
                "jwks_uri": self.jwks_url,
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "claims_supported": [
                    "aud",
                    "email",
                    "email_verified",
                    "exp",
                    "family_name",
                    "given_name",
                    "hd",
                    "iat",
                    "iss",
                    "name",
                    "nonce",
                    "picture",
                    "sub",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code"],
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        fake: FakeGoogle,
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeGoogle/1.0"

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            params |= dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.server.fake._dispatch(self.command, parts.path, params, headers)
        except Exception as error:  # answer, so a bug in the fake fails a test, not hangs it
            response = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": repr(error)})
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Google OAuth 2.0 / OIDC server.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="accepted redirect URI (repeatable); by default any http(s) URI",
    )
    parser.add_argument("--sub", default=GoogleIdentity.sub)
    parser.add_argument("--email", default=GoogleIdentity.email)
    parser.add_argument("--name", default=GoogleIdentity.name)
    args = parser.parse_args(argv)

    given_name, _, family_name = (args.name or "").partition(" ")
    fake = FakeGoogle(
        client_id=args.client_id,
        client_secret=args.client_secret,
        port=args.port,
        redirect_uris=args.redirect_uris,
        identity=GoogleIdentity(
            sub=args.sub,
            email=args.email,
            name=args.name or None,
            given_name=given_name or None,
            family_name=family_name or None,
        ),
        verbose=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    with fake:
        print(f"fake google listening on {fake.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    main()
