"""The admin sites' sign-in form, under the same per-account limit as `POST /auth/login`."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from rest_framework.exceptions import Throttled

from accounts.throttles import clear_login_attempts, count_login_attempt


class LimitedLoginForm(AdminAuthenticationForm):
    """`/admin/` and `/backoffice/` sign-in: every attempt counts towards the account's limit
    (accounts/throttles.py), so a password cannot be guessed through a form the API's lockout
    does not see; a locked email is refused before any password is checked."""

    def clean(self):
        email = self.cleaned_data.get("username")
        if email:
            try:
                count_login_attempt(email=email)
            except Throttled as error:
                raise ValidationError(
                    "Too many sign-in attempts for this account. Try again in "
                    f"{error.wait} seconds.",
                    code="throttled",
                ) from error
        cleaned = super().clean()  # authenticates; a wrong password raises here
        if email:
            clear_login_attempts(email=email)
        return cleaned
