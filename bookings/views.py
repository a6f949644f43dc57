from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ahoum.errors import ErrorSerializer
from bookings import emails, selectors
from bookings.exceptions import AlreadyWaiting
from bookings.filters import BookingFilter
from bookings.models import Booking, WaitlistEntry
from bookings.serializers import (
    BookingCreateSerializer,
    BookingSerializer,
    WaitlistAcceptSerializer,
    WaitlistEntrySerializer,
    WaitlistJoinSerializer,
)
from bookings.services import payments, waitlist
from bookings.services.booking import cancel_attendee, cancel_booking


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """The invite is text/calendar whatever the client accepts, and errors stay JSON.

    Without this, a calendar client sending `Accept: text/calendar` would get 406, since the
    API's only renderer is JSON; the invite itself is returned as a plain HttpResponse.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class BookingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own bookings. Someone else's booking is a 404, never a 403."""

    queryset = Booking.objects.none()  # typed schema; rows come from get_queryset()
    serializer_class = BookingSerializer
    permission_classes = [IsAuthenticated]
    lookup_value_regex = r"[0-9]+"
    filterset_class = BookingFilter

    def get_queryset(self):
        return selectors.bookings_of(self.request.user)

    @extend_schema(
        request=BookingCreateSerializer,
        responses={201: BookingSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        description="Book `seats` seats (default 1), one per attendee. Free events are "
        "confirmed at once; paid events are held (`pending`/`unpaid`) until `hold_expires_at` "
        "and, when Stripe is configured, come with `checkout_url` (one line item, quantity = "
        "seats). All seats or none: 409 `sold_out` with `seats_left` when fewer are left. "
        "Errors: 400 naming `seats` (beyond the event's `max_seats_per_booking`) or "
        "`attendees`, 404 `event_not_found`, 409 `event_not_bookable` or `already_booked`, 403 "
        "`own_event`, 502/503 when Stripe fails (no seat stays held).",
    )
    def create(self, request: Request) -> Response:
        serializer = BookingCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = payments.book_with_checkout(user=request.user, **serializer.validated_data)
        return Response(BookingSerializer(booking).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: BookingSerializer, 409: ErrorSerializer},
        description="Cancel an unpaid hold or a free booking (every seat), or a paid one with a "
        "full refund "
        "until CANCELLATION_CUTOFF_HOURS before the start (409 `cancellation_cutoff_passed` "
        "after). The seat is free at once. The refund is made by the worker right after: the "
        "answer shows `refund_status: pending`, then `succeeded` (or `failed`: staff refund "
        "it by hand).",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        booking = cancel_booking(booking=self.get_object(), by=request.user)
        booking = self.get_queryset().get(pk=booking.pk)  # with its refunds, as listed
        return Response(BookingSerializer(booking).data)

    @extend_schema(
        request=None,
        responses={200: BookingSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        description="Cancel one seat (attendee) of an active booking; the seat is free at once "
        "and the booking keeps the others (`seats` and `amount` go down by one seat). A paid "
        "seat is refunded for its share (a partial refund through Stripe) under the same "
        "cutoff as a booking (409 `cancellation_cutoff_passed`). An unpaid hold's Checkout "
        "Session is closed: `POST /bookings/{id}/checkout` opens one for the seats left. The "
        "last seat cancels the booking. 404 `not_found` for an attendee not of this booking, "
        "409 `not_cancellable` for a seat or booking cancelled already.",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"attendees/(?P<attendee_id>[0-9]+)/cancel",
        url_name="cancel-attendee",
    )
    def cancel_attendee(self, request: Request, pk=None, attendee_id=None) -> Response:
        booking = cancel_attendee(
            booking=self.get_object(), attendee_id=int(attendee_id), by=request.user
        )
        booking = self.get_queryset().get(pk=booking.pk)  # with its refunds, as listed
        return Response(BookingSerializer(booking).data)

    @extend_schema(
        request=None,
        responses={
            200: BookingSerializer,
            409: ErrorSerializer,
            502: ErrorSerializer,
            503: ErrorSerializer,
        },
        description="The booking's open Stripe Checkout Session, or a new one if its hold "
        "lapsed and a seat can still be held (409 `sold_out` otherwise).",
    )
    @action(detail=True, methods=["post"])
    def checkout(self, request: Request, pk=None) -> Response:
        booking = payments.checkout(booking=self.get_object(), by=request.user)
        return Response(BookingSerializer(booking).data)

    @extend_schema(
        operation_id="bookings_calendar",
        responses={
            (200, "text/calendar"): OpenApiResponse(
                OpenApiTypes.BINARY, description="An RFC 5545 calendar (invite.ics)."
            ),
            404: ErrorSerializer,
        },
        description="The booking's calendar invite, the same one the confirmation email "
        "carries: METHOD:REQUEST while the booking holds a seat (STATUS:TENTATIVE until it is "
        "paid), METHOD:CANCEL once it is cancelled or expired. Its UID is stable per booking "
        "and SEQUENCE is the booking's version, so calendars update the entry they made.",
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="calendar.ics",
        url_name="calendar",
        renderer_classes=[JSONRenderer],
        content_negotiation_class=AnyAcceptNegotiation,
    )
    def calendar(self, request: Request, pk=None) -> HttpResponse:
        invite = emails.calendar_invite(self.get_object())
        response = HttpResponse(invite, content_type="text/calendar; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="booking-{pk}.ics"'
        return response


class CheckoutReturnView(APIView):
    """Where Stripe Checkout sends the person back (CHECKOUT_SUCCESS_URL/CANCEL_URL defaults).

    A front end normally takes these URLs; without one, the API answers plainly. The booking
    is confirmed by Stripe's webhook, not by this page.
    """

    permission_classes = [AllowAny]
    authentication_classes = []
    outcome = "success"

    @extend_schema(
        responses={200: inline_serializer("CheckoutReturn", {"detail": serializers.CharField()})}
    )
    def get(self, request: Request) -> Response:
        if self.outcome == "success":
            detail = (
                "Thank you. Your payment is being confirmed; see GET /bookings/ for its status."
            )
        else:
            detail = "Payment cancelled. Your seat stays held until hold_expires_at."
        return Response({"detail": detail})


class WaitlistJoinView(APIView):
    """`POST /events/{id}/waitlist`: join the waitlist of a sold-out event."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=WaitlistJoinSerializer,
        responses={201: WaitlistEntrySerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        description="Wait for `seats` seats (default 1) of a sold-out event. Freed seats are "
        "offered in the order people joined; an offer holds them for WAITLIST_OFFER_MINUTES "
        "(`POST /waitlist/{id}/accept`). 409 `seats_available` (with `seats_left`) when they "
        "can be booked now, `already_booked`, `already_waiting` (with `entry`), "
        "`event_not_bookable`, `waitlist_closed`; 400 naming `seats`.",
    )
    def post(self, request: Request, event_id: int) -> Response:
        serializer = WaitlistJoinSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            entry = waitlist.join(
                user=request.user, event_id=int(event_id), **serializer.validated_data
            )
        except AlreadyWaiting as error:
            if error.entry is not None:
                entry = selectors.waitlist_of(request.user).get(pk=error.entry.pk)
                error.extra = {"entry": WaitlistEntrySerializer(entry).data}
            raise
        entry = selectors.waitlist_of(request.user).get(pk=entry.pk)  # with its position
        return Response(WaitlistEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class WaitlistViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's waitlist entries. Someone else's entry is a 404."""

    queryset = WaitlistEntry.objects.none()
    serializer_class = WaitlistEntrySerializer
    permission_classes = [IsAuthenticated]
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return selectors.waitlist_of(self.request.user)

    @extend_schema(
        responses={200: WaitlistEntrySerializer, 409: ErrorSerializer},
        description="Leave the waitlist; an outstanding offer goes to the next person. 409 "
        "`not_waiting` once the entry has ended.",
    )
    def destroy(self, request: Request, pk=None) -> Response:
        entry = waitlist.leave(entry=self.get_object(), by=request.user)
        return Response(WaitlistEntrySerializer(self.get_queryset().get(pk=entry.pk)).data)

    @extend_schema(
        request=WaitlistAcceptSerializer,
        responses={201: BookingSerializer, 409: ErrorSerializer, 502: ErrorSerializer,
                   503: ErrorSerializer},
        description="Turn an open offer into a booking of its seats, as `POST /bookings/` "
        "books: free events confirmed, paid ones held until the offer's expiry with a "
        "Checkout Session. 409 `offer_not_open` when there is no open offer.",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk=None) -> Response:
        serializer = WaitlistAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        booking = waitlist.accept(
            entry=self.get_object(),
            by=request.user,
            attendees=serializer.validated_data.get("attendees", []),
        )
        return Response(BookingSerializer(booking).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: WaitlistEntrySerializer, 409: ErrorSerializer},
        description="Decline an open offer: its seats go to the next person and the entry "
        "ends (`left`). 409 `not_waiting` without an open offer.",
    )
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk=None) -> Response:
        entry = waitlist.leave(entry=self.get_object(), by=request.user, declined=True)
        return Response(WaitlistEntrySerializer(self.get_queryset().get(pk=entry.pk)).data)
