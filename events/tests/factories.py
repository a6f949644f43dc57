from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.tests.factories import FacilitatorFactory
from events.models import Event


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    title = factory.Sequence(lambda n: f"Session {n}")
    description = "A calm session."
    type = "Yoga"
    rating = Decimal("4.5")
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
    ends_at = factory.LazyAttribute(lambda event: event.starts_at + timedelta(hours=2))
    timezone = "Europe/Berlin"
    location = "Berlin"
    capacity = 10
    price = Decimal("25.00")
    currency = "EUR"
    facilitator = factory.SubFactory(FacilitatorFactory)
