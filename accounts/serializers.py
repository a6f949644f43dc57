from django.conf import settings
from django.contrib.auth import password_validation
from rest_framework import serializers
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Role, User
from accounts.throttles import clear_login_attempts, count_login_attempt
from ahoum.serializers import StrictCharField, StrictEmailField


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "is_staff", "date_joined"]
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    email = StrictEmailField(max_length=254)
    password = StrictCharField(write_only=True, style={"input_type": "password"})
    name = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.USER)

    def validate(self, attrs):
        # Django's validators compare the password with the other fields, so run them here.
        candidate = User(email=attrs["email"], name=attrs["name"])
        try:
            password_validation.validate_password(attrs["password"], candidate)
        except Exception as error:  # django.core.exceptions.ValidationError
            raise serializers.ValidationError({"password": list(error.messages)}) from error
        return attrs


def token_pair(*, access: str, refresh: str) -> dict:
    """The body of every successful login: the original's `access_token`, plus OAuth2's keys."""
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": int(settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
    }


def issue_tokens(user: User) -> dict:
    """A fresh token pair for `user` (password login and the Google callback)."""
    refresh = LoginSerializer.get_token(user)
    return token_pair(access=str(refresh.access_token), refresh=str(refresh))


class TokenPairSerializer(serializers.Serializer):
    """Response shape of login, refresh and the Google callback (for the schema)."""

    access_token = serializers.CharField()
    refresh_token = StrictCharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Access token lifetime in seconds.")


class LoginSerializer(TokenObtainPairSerializer):
    """`{email, password}` → a token pair. Unknown email and wrong password fail alike (401)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = StrictCharField(write_only=True)
        self.fields["password"] = StrictCharField(
            write_only=True, trim_whitespace=False, style={"input_type": "password"}
        )

    @classmethod
    def get_token(cls, user: User) -> RefreshToken:
        token = super().get_token(user)
        token["role"] = user.role
        token["is_staff"] = user.is_staff
        return token

    def validate(self, attrs):
        email = attrs[self.username_field]
        # Too many failures for this email: 429 before any lookup (accounts/throttles.py).
        count_login_attempt(email=email)
        data = super().validate(attrs)  # authenticates; unknown email or bad password → 401
        clear_login_attempts(email=email)
        return token_pair(access=data["access"], refresh=data["refresh"])


class RefreshSerializer(serializers.Serializer):
    """`{refresh_token}`: POST /auth/refresh (`services.rotate_refresh_token`) → a new pair."""

    refresh_token = StrictCharField(write_only=True)


class LogoutSerializer(serializers.Serializer):
    refresh_token = StrictCharField()


class SetPasswordSerializer(serializers.Serializer):
    new_password = StrictCharField(write_only=True, style={"input_type": "password"})
    current_password = StrictCharField(
        write_only=True,
        required=False,
        default="",
        style={"input_type": "password"},
        help_text="Required when the account has a password; not after Google disabled it.",
    )

    def validate_new_password(self, value: str) -> str:
        try:
            password_validation.validate_password(value, self.context["user"])
        except Exception as error:  # django.core.exceptions.ValidationError
            raise serializers.ValidationError(list(error.messages)) from error
        return value


class GoogleLoginQuerySerializer(serializers.Serializer):
    next = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text=(
            "A front-end URL on GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS. After sign-in the browser "
            "is sent there with the token pair in the fragment (#access_token=...)."
        ),
    )


class NoticeSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class GoogleTokenPairSerializer(TokenPairSerializer):
    """The Google callback's answer: the login token pair, plus a notice when it changed the
    account (`password_disabled`: Google was linked and the password turned off)."""

    notice = NoticeSerializer(required=False)
