"""Each app mounts its own URLs. API routes make the trailing slash optional (`/?$`)."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ahoum.views import HealthView
from facilitators.backoffice import backoffice

urlpatterns = [
    re_path(r"^healthz/?$", HealthView.as_view(), name="healthz"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    path("backoffice/", backoffice.urls),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("", include("accounts.urls")),
    path("", include("events.urls")),
    path("", include("bookings.urls")),
    path("", include("crm.urls")),
    path("", include("facilitators.urls")),
]

handler400 = "ahoum.errors.bad_request"
handler403 = "ahoum.errors.forbidden"
handler404 = "ahoum.errors.not_found"
handler500 = "ahoum.errors.server_error"
