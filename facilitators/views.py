from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsFacilitator
from bookings.filters import BookingFilter
from bookings.models import Booking
from bookings.services import event_cancellation
from events.models import Event
from facilitators import selectors
from facilitators.permissions import IsEventFacilitatorOrStaff
from facilitators.serializers import (
    CancelEventSerializer,
    CancellationSummarySerializer,
    FacilitatorEventSerializer,
    RegistrationPageSerializer,
    RegistrationSerializer,
    RegistrationSummarySerializer,
    RegistrationWaitlistEntrySerializer,
)


class OwnEventMixin:
    """The event named in the URL: 404 if unknown, 403 unless the caller runs it (or is staff)."""

    permission_classes = [IsEventFacilitatorOrStaff]

    def get_event(self) -> Event:
        if not hasattr(self, "_event"):
            self._event = get_object_or_404(Event.objects.all(), pk=self.kwargs["event_id"])
            self.check_object_permissions(self.request, self._event)
        return self._event


class RegistrationsView(OwnEventMixin, generics.ListAPIView):
    """Who booked the event, with a summary of seats, statuses and revenue, and who waits
    for seats (`waitlist`: the first 100 open entries, in order)."""

    serializer_class = RegistrationSerializer
    filterset_class = BookingFilter
    queryset = Booking.objects.none()

    def get_queryset(self):
        return selectors.registrations(self.get_event())

    @extend_schema(responses={200: RegistrationPageSerializer}, tags=["facilitator"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        response = self.list(request, *args, **kwargs)
        summary = selectors.registration_summary(self.get_event())
        response.data["summary"] = RegistrationSummarySerializer(summary).data
        entries = selectors.open_waitlist(self.get_event())
        response.data["waitlist"] = {
            "count": summary["waitlist_waiting"] + summary["waitlist_offered"],
            "results": RegistrationWaitlistEntrySerializer(entries, many=True).data,
        }
        return response


class CancelEventView(OwnEventMixin, APIView):
    @extend_schema(
        request=CancelEventSerializer,
        responses={200: CancellationSummarySerializer},
        tags=["facilitator"],
        description="Cancel the event (it is kept, with status `cancelled`) and answer at "
        "once: the worker then cancels its bookings in batches and refunds every paid one "
        "through Stripe. The summary says what is done so far (`to_settle` bookings left, "
        "`refunds_pending`); calling it again answers with the current summary and refunds "
        "nothing twice.",
    )
    def post(self, request: Request, event_id: int) -> Response:
        event = self.get_event()
        serializer = CancelEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        summary = event_cancellation.cancel_event(
            event=event, by=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(summary.as_dict())


class FacilitatorEventsView(generics.ListAPIView):
    """The caller's own events (staff: everyone's), with booking counts and seats left."""

    serializer_class = FacilitatorEventSerializer
    permission_classes = [IsFacilitator]
    queryset = Event.objects.none()

    def get_queryset(self):
        return selectors.own_events(self.request.user)

    @extend_schema(tags=["facilitator"])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return self.list(request, *args, **kwargs)
