import pytest
from django.core.management import call_command

from accounts.models import User
from events.models import Event

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_matches_the_original_mock_data(capsys):
    call_command("seed_demo")
    call_command("seed_demo")

    assert User.objects.filter(role="facilitator").count() == 2
    assert User.objects.filter(role="user", is_staff=False).count() == 2
    yoga = Event.objects.get(title="Yoga Retreat")
    assert (yoga.type, str(yoga.rating)) == ("Yoga", "4.8")
    assert Event.objects.bookable().count() == 5
    assert "maya@ahoum.example" in capsys.readouterr().out
