"""The project's URLs plus views that fail or stall, to test the answers on API paths."""

import time

import stripe
from django.conf import settings
from django.db import connection
from django.urls import path
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ahoum.urls import urlpatterns as project_urlpatterns


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise RuntimeError("boom: a bug, with a secret-looking value sk_live_should_not_leak")


@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def stall(request):
    """Busy far past any worker timeout (a runaway loop or a call that never returns)."""
    time.sleep(600)
    return Response({"stalled": False})


@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def stall_in_database(request):
    """A statement that runs far past any statement timeout."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(600)")
    return Response({"stalled": False})


@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def time_limits(request):
    """What this process's settings and Stripe client were given."""
    return Response(
        {
            "statement_timeout_ms": settings.DATABASE_STATEMENT_TIMEOUT_MS,
            "stripe_timeout_seconds": settings.STRIPE_TIMEOUT_SECONDS,
            "stripe_max_network_retries": settings.STRIPE_MAX_NETWORK_RETRIES,
            "stripe_client_max_network_retries": stripe.max_network_retries,
        }
    )


urlpatterns = [
    path("crash/", crash),
    path("stall/", stall),
    path("stall-in-database/", stall_in_database),
    path("time-limits/", time_limits),
    *project_urlpatterns,
]
handler500 = "ahoum.errors.server_error"
handler404 = "ahoum.errors.not_found"
