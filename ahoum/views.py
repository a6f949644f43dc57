import logging

from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class HealthView(APIView):
    """Liveness and database reachability, for load balancers and the benchmark's ceiling."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="healthz",
        responses={
            200: inline_serializer(
                "Health", {"status": serializers.CharField(), "database": serializers.CharField()}
            ),
            503: inline_serializer(
                "Unhealthy",
                {"status": serializers.CharField(), "database": serializers.CharField()},
            ),
        },
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError:
            logger.exception("health check: database unreachable")
            return Response({"status": "unavailable", "database": "error"}, status=503)
        return Response({"status": "ok", "database": "ok"})
