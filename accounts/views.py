from django.http import HttpRequest, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import google, services
from accounts.serializers import (
    GoogleLoginQuerySerializer,
    GoogleTokenPairSerializer,
    LoginSerializer,
    LogoutSerializer,
    RefreshSerializer,
    RegisterSerializer,
    SetPasswordSerializer,
    TokenPairSerializer,
    UserSerializer,
    issue_tokens,
    token_pair,
)
from accounts.throttles import AuthRateThrottle
from ahoum.errors import ErrorSerializer


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.register_user(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(TokenObtainPairView):
    serializer_class = LoginSerializer
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        request=LoginSerializer,
        responses={200: TokenPairSerializer, 401: ErrorSerializer},
        tags=["auth"],
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        return super().post(request, *args, **kwargs)


class RefreshView(TokenRefreshView):
    """A new pair for a refresh token, which is blacklisted: each token works once."""

    serializer_class = RefreshSerializer
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        request=RefreshSerializer,
        responses={200: TokenPairSerializer, 401: ErrorSerializer},
        tags=["auth"],
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            refresh = services.rotate_refresh_token(
                refresh_token=serializer.validated_data["refresh_token"]
            )
        except TokenError as error:
            raise InvalidToken(error.args[0]) from error
        return Response(token_pair(access=str(refresh.access_token), refresh=str(refresh)))


class LogoutView(APIView):
    """Blacklists the refresh token; it can never be used again."""

    permission_classes = [AllowAny]

    @extend_schema(
        request=LogoutSerializer,
        responses={204: OpenApiResponse(description="Logged out."), 401: ErrorSerializer},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            RefreshToken(serializer.validated_data["refresh_token"]).blacklist()
        except TokenError as error:
            raise InvalidToken(error.args[0]) from error
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(generics.RetrieveAPIView):
    serializer_class = UserSerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(tags=["auth"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_object(self):
        return self.request.user


class SetPasswordView(APIView):
    """Sets a new password; every refresh token issued before is revoked."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        request=SetPasswordSerializer,
        responses={200: TokenPairSerializer, 401: ErrorSerializer},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = SetPasswordSerializer(data=request.data, context={"user": request.user})
        serializer.is_valid(raise_exception=True)
        services.set_password(user=request.user, **serializer.validated_data)
        return Response(issue_tokens(request.user))


def _google_errors(*codes: int) -> dict:
    return {code: ErrorSerializer for code in codes}


class DjangoRequestMixin:
    """Keeps the view's Django `HttpRequest` as `http_request`: allauth's views and adapters
    take Django's request, not DRF's `Request` wrapping it (which `self.request` becomes)."""

    def setup(self, request: HttpRequest, *args, **kwargs) -> None:
        super().setup(request, *args, **kwargs)  # Django's hook for a view's own attributes
        self.http_request = request


class GoogleLoginView(DjangoRequestMixin, APIView):
    """Starts Google sign-in in the browser: a redirect to Google's consent screen."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        operation_id="auth_google_login",
        parameters=[GoogleLoginQuerySerializer],
        responses={
            302: OpenApiResponse(description="To Google's consent screen (state and PKCE)."),
            **_google_errors(400, 503),
        },
        tags=["auth"],
    )
    def get(self, request: Request) -> HttpResponseRedirect:
        query = GoogleLoginQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return google.start_login(self.http_request, next_url=query.validated_data["next"])


class GoogleCallbackView(DjangoRequestMixin, APIView):
    """Google's redirect URI: completes sign-in and answers with the login token pair."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        operation_id="auth_google_callback",
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, description="Set by Google."),
            OpenApiParameter("code", OpenApiTypes.STR, description="Set by Google."),
            OpenApiParameter("error", OpenApiTypes.STR, description="Set by Google."),
        ],
        responses={
            200: GoogleTokenPairSerializer,
            302: OpenApiResponse(description="To `next`, with the token pair in the fragment."),
            **_google_errors(400, 403, 409, 502, 503),
        },
        tags=["auth"],
    )
    def get(self, request: Request) -> Response | HttpResponseRedirect:
        sign_in = google.finish_login(self.http_request)
        body = issue_tokens(sign_in.user)
        if sign_in.notice:
            body["notice"] = sign_in.notice
        if sign_in.next_url:
            fragment = {**body, "notice": sign_in.notice["code"]} if sign_in.notice else body
            response = HttpResponseRedirect(google.url_with_fragment(sign_in.next_url, fragment))
        else:
            response = Response(body)
        response["Cache-Control"] = "no-store"  # it carries tokens
        return response
