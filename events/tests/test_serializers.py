"""The catalogue's hand-written representation writes exactly what DRF's generic one would."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from conftest import assert_renders_like_drf
from events.models import Event
from events.serializers import EventSerializer
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_representation_matches_drf_for_every_kind_of_event():
    soon = timezone.now().replace(microsecond=123456) + timedelta(days=3)
    EventFactory(rating=None, price=Decimal("0"), location="", description="")
    EventFactory(rating=Decimal("5.0"), price=Decimal("1234.50"), starts_at=soon)
    cancelled = EventFactory(rating=Decimal("3.0"))
    Event.objects.filter(pk=cancelled.pk).update(
        status="cancelled", cancellation_reason="Flooded studio", cancelled_at=soon
    )

    events = list(Event.objects.for_catalogue())
    assert len(events) == 3
    for event in events:
        assert_renders_like_drf(EventSerializer, event)
