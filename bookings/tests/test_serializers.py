"""Bookings' hand-written representations write exactly what DRF's generic ones would."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from bookings import services
from bookings.models import Booking
from bookings.serializers import BookedEventSerializer, BookingSerializer
from conftest import assert_renders_like_drf
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_representation_matches_drf_in_every_state(user):
    free = services.book_event(user=user, event_id=EventFactory(price=0).pk)
    held = services.book_event(user=user, event_id=EventFactory().pk)
    services.attach_checkout(
        booking_id=held.pk,
        session_id="cs_test_1",
        url="https://checkout.stripe.com/c/pay/cs_test_1",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    refunded = services.book_event(user=UserFactory(), event_id=EventFactory().pk)
    services.mark_paid(booking_id=refunded.pk)
    services.mark_refunded(booking_id=refunded.pk)
    services.cancel_booking(booking=free, by=user)

    bookings = list(Booking.objects.for_listing())
    assert len(bookings) == 3
    for booking in bookings:
        assert_renders_like_drf(BookingSerializer, booking)
        assert_renders_like_drf(BookedEventSerializer, booking.event)
    assert BookingSerializer(Booking.objects.get(pk=held.pk)).data["checkout_session_id"]
