"""What an event may say: dates in a sane range, real time zones and currencies, bounded text.

Each limit is a 400 naming the field, through the API and through the model (the admin, the
back office and scripts validate with `full_clean()`).
"""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import FacilitatorFactory
from bookings.money import STRIPE_CURRENCIES, THREE_DECIMAL, ZERO_DECIMAL
from conftest import client_for
from events import services
from events.models import (
    DESCRIPTION_MAX_LENGTH,
    LONGEST_EVENT,
    SCHEDULE_AHEAD,
    Event,
    attendee_timezones,
)
from events.tests.factories import EventFactory
from events.tests.test_event_writes import new_event_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return FacilitatorFactory()


def create(owner, **overrides):
    return client_for(owner).post("/events", new_event_body(**overrides), format="json")


def refused(response, field: str) -> list[str]:
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert not Event.objects.exists()
    return response.json()["fields"][field]


def at(moment: datetime) -> str:
    return moment.isoformat()


# --- dates ----------------------------------------------------------------------------------------


def test_an_event_far_in_the_future_is_refused_naming_starts_at(owner):
    # The reproduction: 9999-12-31T22:00Z in Europe/Berlin made every invite of it fail.
    response = create(
        owner,
        starts_at="9999-12-31T22:00:00Z",
        ends_at="9999-12-31T23:00:00Z",
        timezone="Europe/Berlin",
    )

    assert "5 years" in refused(response, "starts_at")[0]


def test_starts_at_may_be_up_to_five_years_ahead_and_not_a_day_more(owner):
    limit = timezone.now() + SCHEDULE_AHEAD
    too_far = limit + timedelta(days=1)
    refused(
        create(owner, starts_at=at(too_far), ends_at=at(too_far + timedelta(hours=2))), "starts_at"
    )

    fine = limit - timedelta(days=1)
    response = create(owner, starts_at=at(fine), ends_at=at(fine + timedelta(hours=2)))
    assert response.status_code == 201, response.json()


def test_an_event_lasts_at_most_thirty_days(owner):
    starts_at = timezone.now() + timedelta(days=10)

    response = create(
        owner, starts_at=at(starts_at), ends_at=at(starts_at + LONGEST_EVENT + timedelta(minutes=1))
    )
    assert "30 days" in refused(response, "ends_at")[0]

    # A month-long teacher training is the longest thing the catalogue sells.
    response = create(owner, starts_at=at(starts_at), ends_at=at(starts_at + LONGEST_EVENT))
    assert response.status_code == 201, response.json()


def test_a_change_is_held_to_the_same_bounds(owner):
    event = EventFactory(facilitator=owner)
    client = client_for(owner)

    response = client.patch(
        f"/events/{event.pk}", {"ends_at": at(event.starts_at + timedelta(days=45))}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "ends_at" in response.json()["fields"]

    response = client.patch(
        f"/events/{event.pk}",
        {"starts_at": "9999-12-31T22:00:00Z", "ends_at": "9999-12-31T23:00:00Z"},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert "starts_at" in response.json()["fields"]
    event.refresh_from_db()
    assert event.starts_at.year < 9999


def test_the_model_refuses_what_the_api_refuses(owner):
    """The admin, the back office and scripts go through full_clean(), not the serializer."""
    now = timezone.now()

    def problems(**fields) -> dict:
        with pytest.raises(ValidationError) as caught:
            EventFactory.build(facilitator=owner, **fields).full_clean()
        return caught.value.message_dict

    assert "starts_at" in problems(
        starts_at=datetime(9999, 12, 31, 22, tzinfo=UTC),
        ends_at=datetime(9999, 12, 31, 23, tzinfo=UTC),
    )
    # Not absurdly in the past either: year 1 in a zone west of Greenwich is before year 1.
    assert "starts_at" in problems(
        starts_at=datetime(1, 1, 1, 1, tzinfo=UTC), ends_at=datetime(1, 1, 1, 2, tzinfo=UTC)
    )
    assert "ends_at" in problems(
        starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=90)
    )
    assert "ends_at" in problems(starts_at=now + timedelta(days=2), ends_at=now + timedelta(days=1))

    # Bounds that move with "now" never make a stored event unchangeable: the admin fixes a
    # typo in the title of last year's retreat.
    event = EventFactory(
        facilitator=owner, starts_at=now - timedelta(days=400), ends_at=now - timedelta(days=399)
    )
    services.update_event(event=event, by=owner, title="Last year's retreat")
    event.refresh_from_db()
    assert event.title == "Last year's retreat"


# --- time zones -----------------------------------------------------------------------------------


def test_only_real_places_are_time_zones(owner):
    refused_names = [
        "localtime",  # the host's own zone, whatever that is
        "Factory",  # "-00": no offset anyone lives in
        "posixrules",
        "Etc/GMT+5",  # sign inverted (it is UTC-5), and no place
        "EST5EDT",
        "US/Eastern",  # an old alias: America/New_York is accepted
        "right/Europe/Berlin",  # leap-second copies some hosts ship
        "posix/Europe/Berlin",
        "europe/berlin",
        "../../etc/passwd",
        "Mars/Olympus",
    ]
    for name in refused_names:
        assert "IANA" in refused(create(owner, timezone=name), "timezone")[0], name

    for name in ["Europe/Berlin", "America/Argentina/Buenos_Aires", "Pacific/Chatham", "UTC"]:
        response = create(owner, timezone=name)
        assert response.status_code == 201, response.json()
        assert response.json()["timezone"] == name


def test_every_accepted_zone_is_one_python_can_load():
    from zoneinfo import ZoneInfo

    accepted = attendee_timezones()
    assert {"Europe/Berlin", "UTC", "Asia/Makassar"} <= accepted
    assert not {"Factory", "localtime", "posixrules", "Etc/UTC", "US/Eastern"} & accepted
    for name in accepted:
        ZoneInfo(name)


# --- currencies -----------------------------------------------------------------------------------


def test_only_currencies_stripe_charges_in(owner):
    for code in ["ZZZ", "XXX", "XAU", "BTC", "E1R", "EU "]:
        assert "Stripe" in refused(create(owner, currency=code), "currency")[0], code
    for code in ["EURO", "", 978]:
        refused(create(owner, currency=code), "currency")

    for code in ["EUR", "usd", "JPY", "KWD", "INR"]:
        response = create(owner, currency=code)
        assert response.status_code == 201, response.json()
        assert response.json()["currency"] == code.upper()  # `eur` is EUR


def test_the_currencies_with_other_minor_units_are_stripe_currencies():
    assert ZERO_DECIMAL | THREE_DECIMAL <= STRIPE_CURRENCIES
    assert all(len(code) == 3 and code.isupper() for code in STRIPE_CURRENCIES)


def test_the_model_refuses_an_unknown_currency(owner):
    with pytest.raises(ValidationError) as caught:
        EventFactory.build(facilitator=owner, currency="ZZZ").full_clean()

    assert "currency" in caught.value.message_dict


# --- text -----------------------------------------------------------------------------------------


def test_text_is_bounded(owner):
    for field, limit in [
        ("description", DESCRIPTION_MAX_LENGTH),
        ("title", 200),
        ("location", 255),
    ]:
        response = create(owner, **{field: "x" * (limit + 1)})
        assert str(limit) in refused(response, field)[0]

        response = create(owner, **{field: "x" * limit})
        assert response.status_code == 201, response.json()
        Event.objects.all().delete()


def test_a_megabyte_description_is_refused(owner):
    refused(create(owner, description="Breathe. " * 120_000), "description")


def test_the_model_bounds_the_description_too(owner):
    with pytest.raises(ValidationError) as caught:
        EventFactory.build(
            facilitator=owner, description="x" * (DESCRIPTION_MAX_LENGTH + 1)
        ).full_clean()

    assert "description" in caught.value.message_dict


# --- the demo and benchmark data still pass -------------------------------------------------------


def test_the_demo_data_passes_validation():
    call_command("seed_demo")

    assert Event.objects.count() == 5
    for event in Event.objects.all():
        event.full_clean()


def test_the_benchmark_data_passes_validation():
    from bench import seed

    facilitators = [FacilitatorFactory(), FacilitatorFactory()]
    now = timezone.now()
    seed.create_events(60, facilitators, now, random.Random(7))
    seed.create_rush_events(2, facilitators, now)

    assert Event.objects.count() == 62
    for event in Event.objects.all():
        event.full_clean()
