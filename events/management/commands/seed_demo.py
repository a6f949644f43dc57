"""Demo data for `make run`: the original's mock events, run by two facilitators."""

from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from events.models import Event

DEMO_PASSWORD = "ahoum-demo-password"

PEOPLE = [
    ("maya@ahoum.example", "Maya Facilitator", Role.FACILITATOR),
    ("ravi@ahoum.example", "Ravi Facilitator", Role.FACILITATOR),
    ("alice@ahoum.example", "Alice Attendee", Role.USER),
    ("bob@ahoum.example", "Bob Attendee", Role.USER),
]

# title, type, rating, days from now, hours long, capacity, price, location, facilitator
EVENTS = [
    ("Yoga Retreat", "Yoga", "4.8", 14, 48, 20, "350.00", "Rishikesh", 0),
    ("Mindfulness Session", "Meditation", "4.5", 3, 2, 30, "0.00", "Online", 0),
    ("Digital Detox Weekend", "Wellness", "4.9", 21, 48, 12, "420.00", "Black Forest", 1),
    ("Breathwork Workshop", "Breathwork", "4.6", 7, 3, 15, "45.00", "Berlin", 1),
    ("Creative Writing Retreat", "Creativity", "4.7", 30, 72, 10, "280.00", "Lisbon", 0),
]


class Command(BaseCommand):
    help = "Create demo users and upcoming events (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options):
        people = []
        for email, name, role in PEOPLE:
            person, created = User.objects.get_or_create(
                email=email, defaults={"name": name, "role": role}
            )
            if created:
                person.set_password(DEMO_PASSWORD)
                person.save()
            people.append(person)
        if not User.objects.filter(email="admin@ahoum.example").exists():
            User.objects.create_superuser("admin@ahoum.example", DEMO_PASSWORD, name="Ahoum Staff")

        today = timezone.now().replace(hour=9, minute=0, second=0, microsecond=0)
        created_events = 0
        for title, kind, rating, days, hours, capacity, price, location, owner in EVENTS:
            starts_at = today + timedelta(days=days)
            _, created = Event.objects.get_or_create(
                title=title,
                defaults={
                    "description": f"{title} with {people[owner].name}.",
                    "type": kind,
                    "rating": Decimal(rating),
                    "starts_at": starts_at,
                    "ends_at": starts_at + timedelta(hours=hours),
                    "timezone": "Europe/Berlin",
                    "location": location,
                    "capacity": capacity,
                    "price": Decimal(price),
                    "facilitator": people[owner],
                },
            )
            created_events += created

        self.stdout.write(f"Demo data ready ({created_events} new events).")
        self.stdout.write(f"  password for every demo account: {DEMO_PASSWORD}")
        for email, _, role in PEOPLE:
            self.stdout.write(f"  {role:<12} {email}")
        self.stdout.write("  staff        admin@ahoum.example (admin site)")
