from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import Role, User, normalize_email
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
