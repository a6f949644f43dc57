"""Google login through django-allauth's Google provider, ending in our JWT.

allauth does the OAuth 2.0 work: the redirect with `state` and PKCE (both kept in the
session), the code exchange, the ID token's issuer, audience and expiry checks, and finding
the local account (by the linked Google account, else by verified email). This module
decides what may happen to our accounts, through allauth's two adapter classes:

- a new person gets an account with role `user`, the name from Google and no usable password;
- a Google login whose verified email matches an existing account signs in to that account
  and links Google to it, after disabling its password and revoking its refresh tokens:
  `/auth/register` does not prove that the registrant owns the address, so the password may
  belong to someone who registered the victim's email first (pre-account takeover). The
  person is told, and can set a new password with `POST /auth/password`;
- an email Google has not verified never links and never creates an account;
- every refusal is a `DomainError`, so the API's exception handler answers with our JSON
  error shape and allauth's HTML pages are never the answer.

The views (`accounts/views.py`) call `start_login()` and `finish_login()`; the callback
turns the `GoogleSignIn` into the same token pair as `POST /auth/login`.
"""

import logging
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.base import AuthError, AuthProcess
from allauth.socialaccount.providers.google import views as allauth_google
from allauth.socialaccount.providers.google.provider import GoogleProvider
from django.conf import settings
from django.contrib.auth import logout
from django.core.exceptions import MultipleObjectsReturned
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch
from requests import RequestException
from rest_framework import status

from accounts import services
from accounts.models import Role, User, normalize_email
from ahoum.db import service_transaction
from ahoum.errors import DomainError

logger = logging.getLogger(__name__)

RESTART = "Start again at /auth/google/login."


class GoogleLoginNotConfigured(DomainError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "google_not_configured"
    default_detail = "Google login is not configured."


class NextNotAllowed(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "next_not_allowed"
    field = "next"
    default_detail = (
        "This URL may not receive tokens: its origin is not in "
        "GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS."
    )


class GoogleStateInvalid(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "google_state_invalid"
    default_detail = f"This Google sign-in is unknown, already used or expired. {RESTART}"


class GoogleLoginCancelled(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "google_login_cancelled"
    default_detail = "Google sign-in was cancelled."


class GoogleLoginFailed(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "google_login_failed"
    default_detail = f"Google did not confirm the sign-in. {RESTART}"


class GoogleUnavailable(DomainError):
    status_code = status.HTTP_502_BAD_GATEWAY
    code = "google_unavailable"
    default_detail = f"Google could not be reached. {RESTART}"


class GoogleEmailUnverified(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "google_email_unverified"
    default_detail = (
        "Google did not share a verified email address for this account, so it cannot sign in here."
    )


class AccountInactive(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "account_inactive"
    default_detail = "This account is deactivated."


class GoogleAccountConflict(DomainError):
    code = "google_account_conflict"
    default_detail = f"Another sign-in with this email address happened at the same time. {RESTART}"


PASSWORD_DISABLED_NOTICE = {
    "code": "password_disabled",
    "detail": (
        "Google is now linked to your existing account. Its password was turned off because "
        "the address was never confirmed, so someone else could have chosen it. Sign in with "
        "Google, or set a new password with POST /auth/password."
    ),
}


@dataclass
class GoogleSignIn:
    """What one callback achieved; the adapters below fill it in as allauth runs."""

    user: User | None = None
    password_disabled: bool = False
    next_url: str = ""

    @property
    def notice(self) -> dict[str, str] | None:
        return PASSWORD_DISABLED_NOTICE if self.password_disabled else None


def start_login(request: HttpRequest, *, next_url: str = "") -> HttpResponse:
    """A redirect to Google's consent screen; `state` and the PKCE verifier stay in the session.

    A GET starts the flow, as with allauth's SOCIALACCOUNT_LOGIN_ON_GET. allauth calls that a
    login-CSRF trade-off: another site can send a browser through Google sign-in. The person
    signed in is still the one at the keyboard (state and PKCE bind Google's answer to this
    browser's session), and the tokens only reach this origin or an allowed `next`.
    """
    provider = _configured_provider(request)
    if next_url and not is_allowed_next_url(next_url):
        raise NextNotAllowed()
    data = {"next": next_url} if next_url else None
    return provider.redirect(request, process=AuthProcess.LOGIN, data=data)


def finish_login(request: HttpRequest) -> GoogleSignIn:
    """Complete Google's answer through allauth's callback and return who signed in.

    Raises a `DomainError` for every refusal; nothing is written before Google's answer is
    confirmed, and a new account is created in one transaction.
    """
    _configured_provider(request)
    sign_in = request.google_sign_in = GoogleSignIn()
    try:
        response = allauth_google.oauth2_callback(request)
        outcome = f"{response.status_code} {response.get('Location', '')}"
    except NoReverseMatch as error:  # a redirect to one of allauth's pages, not mounted here
        outcome = str(error)
    finally:
        # allauth also signs the person in to a Django session. The API authenticates with
        # the JWT only, and a session would reach the admin for staff: end it.
        logout(request)
    if sign_in.user is None:
        # allauth wanted to show one of its own pages (signup form, "closed" page...): a case
        # the adapters below should have refused. Never show that page.
        logger.error("Google callback ended without a sign-in: allauth answered %s", outcome)
        raise GoogleLoginFailed()
    return sign_in


def is_allowed_next_url(url: str) -> bool:
    """Whether `url` is an http(s) URL on one of GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS."""
    allowed = {
        origin.rstrip("/").lower() for origin in settings.GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS
    }
    if any(character.isspace() or ord(character) < 32 for character in url) or "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    return f"{parts.scheme}://{parts.netloc}".lower() in allowed


def url_with_fragment(url: str, values: dict) -> str:
    """`url` with `values` as its fragment (browsers never send a fragment to a server)."""
    return urlunsplit(urlsplit(url)._replace(fragment=urlencode(values)))


def _configured_provider(request: HttpRequest) -> GoogleProvider:
    try:
        return get_social_adapter(request).get_provider(request, GoogleProvider.id)
    except SocialApp.DoesNotExist as error:  # no GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET
        raise GoogleLoginNotConfigured() from error
    except MultipleObjectsReturned as error:
        # allauth finds the app from GOOGLE_CLIENT_ID/SECRET and a Google "Social application"
        # added in the admin too, and cannot choose (README, Google login).
        logger.error(
            "Google login is off: more than one Google app is configured. Delete the Google "
            "social application in the admin; GOOGLE_CLIENT_ID/SECRET configure it."
        )
        raise GoogleLoginNotConfigured(
            "Google login is misconfigured: more than one Google app is set up."
        ) from error


def _verified_email(sociallogin) -> str:
    """The login's email if Google verified it, else ""."""
    email = normalize_email(sociallogin.user.email)
    for address in sociallogin.email_addresses:
        if address.verified and normalize_email(address.email) == email:
            return email
    return ""


def _sign_in(request: HttpRequest) -> GoogleSignIn:
    # The adapters run only inside finish_login(); a stray call gets a throwaway record.
    return getattr(request, "google_sign_in", None) or GoogleSignIn()


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Our account rules for Google logins (SOCIALACCOUNT_ADAPTER)."""

    def on_authentication_error(
        self, request, provider, error=None, exception=None, extra_context=None
    ) -> None:
        """Turn allauth's error page into our JSON error; nothing has been written yet."""
        extra_context = extra_context or {}
        if isinstance(exception, RequestException):
            logger.warning("Google sign-in: Google unreachable: %r", exception)
            raise GoogleUnavailable() from exception
        if exception is not None:  # OAuth2Error (refused code), ProviderException, ...
            logger.warning("Google sign-in failed: %r", exception)
            raise GoogleLoginFailed() from exception
        if extra_context.get("state") is None:
            # No state, or one this session never issued (tampered, replayed or expired).
            raise GoogleStateInvalid()
        if error == AuthError.CANCELLED:
            raise GoogleLoginCancelled()
        logger.warning("Google sign-in: Google answered error=%s", request.GET.get("error"))
        raise GoogleLoginFailed()

    def pre_social_login(self, request, sociallogin) -> None:
        """Refuse or prepare the login once allauth knows which local account it reaches."""
        if sociallogin.is_existing:
            user = sociallogin.user
            if not user.is_active:
                raise AccountInactive()
            if sociallogin.account.pk is None:
                # Reached through the verified email, not an already-linked Google account
                # (allauth's authenticate_by_email only matches verified addresses). allauth
                # links Google next; whoever chose the password must not keep access.
                _sign_in(request).password_disabled = services.disable_password(user=user)
            return
        email = _verified_email(sociallogin)
        if not email:
            raise GoogleEmailUnverified()
        if User.objects.filter(email=email).exists():
            # Created since allauth looked it up (two first sign-ins at once): refuse rather
            # than fall through to allauth's signup form.
            raise GoogleAccountConflict()

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        profile = sociallogin.account.extra_data
        full_name = " ".join(filter(None, [data.get("first_name"), data.get("last_name")]))
        name = profile.get("name") or full_name or user.email.partition("@")[0]
        user.name = name.strip()[: User._meta.get_field("name").max_length]
        user.role = Role.USER
        return user

    def save_user(self, request, sociallogin, form=None):
        """The new user, its Google link and its email row, in one transaction."""
        try:
            with service_transaction():
                return super().save_user(request, sociallogin, form)
        except IntegrityError as error:  # the same email signing up twice at once
            raise GoogleAccountConflict() from error


class AccountAdapter(DefaultAccountAdapter):
    """allauth's account hooks (ACCOUNT_ADAPTER). allauth signs people in only through the
    Google callback here; its own account pages are not mounted."""

    def is_open_for_signup(self, request) -> bool:
        return True

    def respond_user_inactive(self, request, user):
        raise AccountInactive()

    def add_message(self, *args, **kwargs) -> None:
        """allauth's flash messages are for its HTML pages, which this project does not serve."""

    def post_login(self, request, user, **kwargs):
        sociallogin = (kwargs.get("signal_kwargs") or {}).get("sociallogin")
        sign_in = _sign_in(request)
        sign_in.user = user
        if sociallogin is not None:
            sign_in.next_url = (sociallogin.state.get("data") or {}).get("next", "")
        return super().post_login(request, user, **kwargs)
