from django.urls import re_path

from accounts import views

urlpatterns = [
    re_path(r"^auth/register/?$", views.RegisterView.as_view(), name="auth-register"),
    re_path(r"^auth/login/?$", views.LoginView.as_view(), name="auth-login"),
    re_path(r"^auth/refresh/?$", views.RefreshView.as_view(), name="auth-refresh"),
    re_path(r"^auth/logout/?$", views.LogoutView.as_view(), name="auth-logout"),
    re_path(r"^auth/me/?$", views.MeView.as_view(), name="auth-me"),
    re_path(r"^auth/password/?$", views.SetPasswordView.as_view(), name="auth-password"),
    # allauth builds the redirect URI with reverse("google_callback"): these names make it
    # exactly /auth/google/callback, the URI to register in Google's console.
    re_path(r"^auth/google/login/?$", views.GoogleLoginView.as_view(), name="google_login"),
    re_path(
        r"^auth/google/callback/?$", views.GoogleCallbackView.as_view(), name="google_callback"
    ),
]
