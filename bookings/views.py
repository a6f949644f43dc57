from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ahoum.errors import ErrorSerializer
from bookings import services
from bookings.filters import BookingFilter
from bookings.models import Booking
from bookings.serializers import BookingCreateSerializer, BookingSerializer


class BookingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own bookings. Someone else's booking is a 404, never a 403."""

    queryset = Booking.objects.none()  # typed schema; rows come from get_queryset()
    serializer_class = BookingSerializer
    permission_classes = [IsAuthenticated]
    lookup_value_regex = r"[0-9]+"
    filterset_class = BookingFilter

    def get_queryset(self):
        return Booking.objects.filter(user=self.request.user).for_listing()

    @extend_schema(
        request=BookingCreateSerializer,
        responses={201: BookingSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        description="Book a seat. Free events are confirmed at once; paid events are held "
        "(`pending`/`unpaid`) until `hold_expires_at`. Errors: 404 `event_not_found`, 409 "
        "`event_not_bookable`, `sold_out` or `already_booked`, 403 `own_event`.",
    )
    def create(self, request: Request) -> Response:
        serializer = BookingCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = services.book_event(user=request.user, **serializer.validated_data)
        return Response(BookingSerializer(booking).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: BookingSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        booking = services.cancel_booking(booking=self.get_object(), by=request.user)
        return Response(BookingSerializer(booking).data)
