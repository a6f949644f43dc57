"""Seed the benchmark database through the ORM and write the files the wrk scripts read.

Run by `bench/run.py` against a freshly migrated database (never a real one: it refuses a
database that already has events). Writes into `--out`:

- `tokens.txt`: one access token per line; line i is user index i (0 is the user with 50
  bookings, 1..N-1 book in the spread and the rush);
- `event_ids.txt`: the catalogue's event ids (for `GET /events/{id}`);
- `spread_pairs.txt`: `user_index event_id` lines, every pair distinct and not booked yet;
- `rush_<n>.txt`: `user_index event_id` lines, every user once, all on rush event n;
- `meta.json`: counts and ids the runner reports.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ahoum.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Role, User  # noqa: E402
from accounts.serializers import issue_tokens  # noqa: E402
from bookings.models import (  # noqa: E402
    Attendee,
    Booking,
    BookingAudit,
    BookingStatus,
    PaymentStatus,
)
from events.models import Event  # noqa: E402

TYPES = ["Yoga", "Meditation", "Breathwork", "Sound Bath", "Retreat"]
LOCATIONS = ["Online", "Berlin", "Lisbon", "Rishikesh", "Bali", "London", "Black Forest"]
TIMEZONES = ["UTC", "Europe/Berlin", "Europe/Lisbon", "Asia/Kolkata", "Asia/Makassar"]
RUSH_CAPACITY = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--facilitators", type=int, default=20)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--heavy-bookings", type=int, default=50)
    parser.add_argument("--existing-bookings", type=int, default=10_000)
    parser.add_argument("--spread-pairs", type=int, default=60_000)
    parser.add_argument("--rush-events", type=int, default=3)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    if Event.objects.exists():
        sys.exit("seed.py: this database already has events; the runner seeds a fresh one.")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    started = time.monotonic()
    now = timezone.now()

    with transaction.atomic():
        facilitators = create_people(args.facilitators, Role.FACILITATOR, "facilitator")
        users = create_people(args.users, Role.USER, "user")
        events = create_events(args.events, facilitators, now, rng)
        rush_events = create_rush_events(args.rush_events, facilitators, now)
        # What save() derives from the texts (the full-text words, events/models.py).
        Event.objects.refresh_search_vector()

        # Distinct (user, event) pairs: the first ones are already booked, the rest are the
        # spread's requests, so no spread request meets an existing booking. User 0 books
        # only its own 50 events.
        pool_users, pool_events = len(users) - 1, len(events)
        wanted = args.existing_bookings + args.spread_pairs
        if wanted > pool_users * pool_events:
            sys.exit("seed.py: more pairs asked for than users x events")
        pairs = [
            (1 + index // pool_events, index % pool_events)
            for index in rng.sample(range(pool_users * pool_events), wanted)
        ]
        existing, spread = pairs[: args.existing_bookings], pairs[args.existing_bookings :]
        heavy_events = rng.sample(range(len(events)), args.heavy_bookings)
        create_bookings(
            [(users[u], events[e]) for u, e in existing]
            + [(users[0], events[e]) for e in heavy_events],
            now,
            rng,
        )
        tokens = [issue_tokens(user)["access_token"] for user in users]

    # A live database has planner statistics; without them PostgreSQL picks the wrong index
    # for the seat count (the (user, event) unique index instead of the event's seat index).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")

    write_lines(args.out / "tokens.txt", tokens)
    write_lines(args.out / "event_ids.txt", [str(event.pk) for event in events])
    write_lines(args.out / "spread_pairs.txt", [f"{u} {events[e].pk}" for u, e in spread])
    for number, event in enumerate(rush_events):
        order = list(range(1, len(users)))
        rng.shuffle(order)
        write_lines(args.out / f"rush_{number}.txt", [f"{u} {event.pk}" for u in order])
    meta = {
        "facilitators": len(facilitators),
        "users_with_tokens": len(users),
        "events": len(events),
        "existing_bookings": len(existing) + len(heavy_events),
        "heavy_user_index": 0,
        "heavy_user_bookings": len(heavy_events),
        "spread_pairs": len(spread),
        "rush_event_ids": [event.pk for event in rush_events],
        "rush_capacity": RUSH_CAPACITY,
        "event_id_range": [events[0].pk, events[-1].pk],
        "seconds": round(time.monotonic() - started, 1),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta))


def create_people(count: int, role: str, kind: str) -> list[User]:
    # Unusable passwords: tokens are minted directly, and hashing 5,000 passwords takes minutes.
    people = [
        User(
            email=f"bench-{kind}-{n}@ahoum.example",
            name=f"Bench {kind.title()} {n}",
            role=role,
            password=make_password(None),
        )
        for n in range(count)
    ]
    return User.objects.bulk_create(people, batch_size=1000)


def create_events(count: int, facilitators: list[User], now, rng: random.Random) -> list[Event]:
    events = []
    for n in range(count):
        kind = TYPES[n % len(TYPES)]
        starts_at = (now + timedelta(days=rng.uniform(1, 180))).replace(second=0, microsecond=0)
        free = rng.random() < 0.3
        events.append(
            Event(
                title=f"{kind} session {n}",
                description=f"A {kind.lower()} session for every level. Bring water and a mat; "
                "the facilitator shares notes and a recording afterwards.",
                type=kind,
                rating=Decimal(rng.randint(30, 50)) / 10,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=rng.choice([1, 2, 3, 48])),
                timezone=rng.choice(TIMEZONES),
                location=rng.choice(LOCATIONS),
                # Large enough that the spread (about 60 bookings per event) never sells out.
                capacity=rng.randint(150, 400),
                price=Decimal("0.00") if free else Decimal(rng.randint(10, 200)),
                currency="EUR",
                facilitator=facilitators[n % len(facilitators)],
            )
        )
    return Event.objects.bulk_create(events, batch_size=1000)


def create_rush_events(count: int, facilitators: list[User], now) -> list[Event]:
    starts_at = (now + timedelta(days=30)).replace(second=0, microsecond=0)
    events = [
        Event(
            title=f"Full moon retreat {n} (booking rush)",
            description="Everyone wants a seat.",
            type="Retreat",
            rating=Decimal("4.9"),
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=2),
            location="Bali",
            capacity=RUSH_CAPACITY,
            price=Decimal("120.00"),  # paid: each seat is a hold plus its expiry task
            currency="EUR",
            facilitator=facilitators[n % len(facilitators)],
        )
        for n in range(count)
    ]
    return Event.objects.bulk_create(events)


def create_bookings(pairs: list[tuple[User, Event]], now, rng: random.Random) -> None:
    """Bookings in the states a live catalogue has: confirmed, held, cancelled, expired."""
    hold = timedelta(minutes=30)
    bookings = []
    for user, event in pairs:
        created_at = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
        booking = Booking(
            user=user,
            event=event,
            facilitator_id=event.facilitator_id,
            amount=event.price,
            currency=event.currency,
            created_at=created_at,
        )
        roll = rng.random()
        if event.price == 0:
            booking.status, booking.payment_status = BookingStatus.CONFIRMED, PaymentStatus.FREE
            booking.confirmed_at = created_at
        elif roll < 0.7:
            booking.status, booking.payment_status = BookingStatus.CONFIRMED, PaymentStatus.PAID
            booking.confirmed_at = booking.paid_at = created_at
        elif roll < 0.8:
            booking.status, booking.payment_status = BookingStatus.PENDING, PaymentStatus.UNPAID
            booking.created_at = now
            booking.hold_expires_at = now + hold
        elif roll < 0.9:
            booking.status, booking.payment_status = BookingStatus.CANCELLED, PaymentStatus.UNPAID
            booking.cancelled_at = created_at
        else:
            booking.status, booking.payment_status = BookingStatus.EXPIRED, PaymentStatus.UNPAID
            booking.hold_expires_at = created_at + hold
            booking.expired_at = created_at + hold
        bookings.append(booking)
    Booking.objects.bulk_create(bookings, batch_size=2000)
    BookingAudit.objects.bulk_create(
        [
            BookingAudit(
                booking=booking,
                version=1,
                change="booking.created",
                to_status=booking.status,
                to_payment_status=booking.payment_status,
                actor=booking.user,
                reason="booked",
                created_at=booking.created_at,
            )
            for booking in bookings
        ],
        batch_size=2000,
    )
    Attendee.objects.bulk_create(
        [
            Attendee(
                booking=booking,
                position=1,
                name=booking.user.name,
                email=booking.user.email,
                is_booker=True,
                created_at=booking.created_at,
            )
            for booking in bookings
        ],
        batch_size=2000,
    )
    # bulk_create bypasses the services that keep each event's seat counter.
    Event.objects.recount_claimed_seats()


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
