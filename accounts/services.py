from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import Role, User, normalize_email
from accounts.throttles import clear_login_attempts
from ahoum.db import service_transaction
from ahoum.errors import DomainError


class EmailTaken(DomainError):
    status_code = 400
    code = "email_taken"
    field = "email"
    default_detail = "An account with this email already exists."


class WrongPassword(DomainError):
    status_code = 400
    code = "wrong_password"
    field = "current_password"
    default_detail = "The current password is missing or wrong."


class NoActiveAccount(DomainError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "no_active_account"
    default_detail = "No active account found for the given token."
    headers = {"WWW-Authenticate": 'Bearer realm="api"'}


def register_user(*, email: str, password: str, name: str, role: str = Role.USER) -> User:
    """Create a user (password already validated); one account per email, whatever its case."""
    email = normalize_email(email)
    user = User(email=email, name=name, role=role)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as error:  # two registrations racing for one address
        raise EmailTaken() from error
    return user


def set_password(*, user: User, new_password: str, current_password: str = "") -> None:
    """Give `user` a new password (already validated) and revoke every refresh token issued
    before. An account that has a usable password must confirm it as `current_password`;
    one without (signed up or linked through Google) needs only the JWT it signed in with."""
    if user.has_usable_password() and not user.check_password(current_password):
        raise WrongPassword()
    hashed = make_password(new_password)  # hashing is slow: outside the transaction
    with service_transaction():
        User.objects.filter(pk=user.pk).update(password=hashed)
        revoke_refresh_tokens(user=user)
    user.password = hashed
    clear_login_attempts(email=user.email)  # the owner proved it: lift a login lockout


def disable_password(*, user: User) -> bool:
    """Make `user`'s password unusable and revoke its refresh tokens, so whoever knew the
    password is out (access tokens lapse within ACCESS_TOKEN_MINUTES). True if there was one."""
    with service_transaction():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.has_usable_password():
            return False
        locked.set_unusable_password()
        locked.save(update_fields=["password"])
        revoke_refresh_tokens(user=locked)
    user.password = locked.password
    return True


def revoke_refresh_tokens(*, user: User) -> None:
    """Blacklist every unexpired refresh token issued to `user`; call inside a transaction."""
    outstanding = OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


def rotate_refresh_token(*, refresh_token: str) -> RefreshToken:
    """Exchange `refresh_token` for a new refresh token (with the same claims) exactly once:
    of concurrent exchanges of one token one wins, the others get `TokenError` (401).

    The winner is the transaction that creates the old token's `BlacklistedToken`; only it
    outstands the new token. Its one-to-one link to the `OutstandingToken` is unique: on
    PostgreSQL a second insert waits for the first transaction to end, then fails and finds
    the row; SQLite runs the (IMMEDIATE) transactions one after another. simplejwt's own
    rotation cannot tell winner from loser (`blacklist()` is a get_or_create), so two
    concurrent refreshes of one token each got a pair.
    """
    refresh = RefreshToken(refresh_token)  # signature, expiry, type; not blacklisted yet
    user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
    user = User.objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
        raise NoActiveAccount()  # deleted or deactivated after the token was issued
    with service_transaction():
        outstanding, _created = OutstandingToken.objects.get_or_create(
            jti=refresh[api_settings.JTI_CLAIM],
            defaults={
                "user": user,
                "token": refresh_token,
                "created_at": refresh.current_time,
                "expires_at": datetime_from_epoch(refresh["exp"]),
            },
        )
        _blacklisted, won = BlacklistedToken.objects.get_or_create(token=outstanding)
        if not won:
            raise TokenError(_("Token is blacklisted"))
        refresh.set_jti()
        refresh.set_exp()
        refresh.set_iat()
        refresh.outstand()
    return refresh
