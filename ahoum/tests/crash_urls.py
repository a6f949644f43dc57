"""The project's URLs plus one view that fails, to test the 500 answer on API paths."""

from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from ahoum.urls import urlpatterns as project_urlpatterns


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise RuntimeError("boom: a bug, with a secret-looking value sk_live_should_not_leak")


urlpatterns = [path("crash/", crash), *project_urlpatterns]
handler500 = "ahoum.errors.server_error"
handler404 = "ahoum.errors.not_found"
