from django.db import IntegrityError, transaction

from accounts.models import Role, User, normalize_email
from ahoum.errors import DomainError


class EmailTaken(DomainError):
    status_code = 400
    code = "email_taken"
    field = "email"
    default_detail = "An account with this email already exists."


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
