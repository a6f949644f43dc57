"""Seed a catalogue at marketplace scale with bulk SQL, for `bench/run.py --scale`.

Run by the runner against a freshly migrated database (it refuses one that has events):

- `--facilitators` facilitators and `--users` people through the ORM (`bulk_create`);
- `--events` upcoming events in one `INSERT ... SELECT ... FROM generate_series(...)`: titles
  and descriptions of real words (a share of them about breath, so a search has something to
  find), types from bench/seed.py's TYPES, ratings 3.0 to 5.0, 30% free;
- `--bookings` bookings in one more such INSERT, about the same number per event, each
  (user, event) pair once, in the states a live catalogue has (confirmed, held, a few lapsed
  holds the scheduler has not expired yet, cancelled, expired), and an audit row each; user 0
  has exactly `--heavy-bookings` (`GET /bookings/`);
- `seats_claimed` from the bookings (`Event.objects.recount_claimed_seats()`), then the
  capacities: some events exactly full, so `available=true` filters something; then the
  search words (below);
- `VACUUM FULL` of the events (the UPDATEs left dead rows a live catalogue does not have),
  then `VACUUM ANALYZE`, as a live database has planner statistics.

Only the columns of the Event and Booking models are written; the search words that save()
derives from the texts are written by the model's own `refresh_search_vector()`, in one
UPDATE. A NOT NULL column without a default that this script does not know stops it with its
name. Writes into `--out`: `tokens.txt` (one line: user 0's access token), `event_ids.txt`
(every event, for `GET /events/{id}`) and `meta.json` (counts, the time of each phase).
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ahoum.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, Q  # noqa: E402
from seed import LOCATIONS, TIMEZONES, TYPES, create_people, write_lines  # noqa: E402

from accounts.models import Role  # noqa: E402
from accounts.serializers import issue_tokens  # noqa: E402
from bookings.models import Booking  # noqa: E402
from events.models import Event  # noqa: E402

# How often each type appears (in 20): a yoga-heavy marketplace, breathwork a niche.
TYPE_SHARES = {"Yoga": 7, "Meditation": 5, "Sound Bath": 3, "Retreat": 3, "Breathwork": 2}
TITLES = {
    "Yoga": ["Vinyasa Flow", "Hatha Yoga", "Yin Yoga", "Power Yoga", "Restorative Yoga",
             "Yoga Nidra", "Ashtanga Practice", "Kundalini Yoga"],
    "Meditation": ["Guided Meditation", "Silent Sitting", "Loving-Kindness Meditation",
                   "Mindfulness Circle", "Body Scan", "Walking Meditation", "Zen Sitting",
                   "Mantra Meditation"],
    # Half of them are about the breath in words a search matches ("breathwork" is a word of
    # its own to a full-text search, a substring to `icontains`).
    "Breathwork": ["Conscious Breathing", "Breath and Movement", "Box Breathing Workshop",
                   "Breathwork Journey", "Holotropic Breathwork", "Pranayama", "Breath of Fire",
                   "Wim Hof Method"],
    "Sound Bath": ["Gong Bath", "Crystal Bowl Sound Bath", "Tibetan Singing Bowls",
                   "Sound Healing", "Full Moon Sound Bath", "Drum Journey", "Sound Journey",
                   "Overtone Chanting"],
    "Retreat": ["Weekend Retreat", "Silent Retreat", "Forest Retreat", "Detox Retreat",
                "Yoga and Hiking Retreat", "Sunrise Retreat", "Digital Detox Weekend",
                "Coastal Retreat"],
}  # fmt: skip
PREFIXES = ["Morning", "Evening", "Sunrise", "Lunchtime", "Gentle", "Deep", "Beginners'",
            "Advanced", "Weekly", "Community", "Slow", "Candlelit"]  # fmt: skip
SUFFIXES = ["", "", "", " for Back Pain", " for Beginners", " for Better Sleep",
            " with Live Music", " in the Park", " for Stress Relief", " for Runners",
            " and Journaling", " by the Sea", " for Focus"]  # fmt: skip
OPENINGS = [
    "A welcoming session for every level.",
    "Join a small group and slow down after a busy week.",
    "An unhurried practice led by an experienced teacher.",
    "Come as you are: no experience needed.",
    "A calm hour to reset body and mind.",
    "Our most popular class, now on more days.",
    "A practice to build strength, balance and patience.",
    "Step away from screens and into your body.",
    "An evening of rest and quiet attention.",
    "A friendly community class with time for questions.",
]
# One of these 40 sentences mentions the breath: about 2.5% of events match on it alone.
MIDDLES = [
    "We move slowly and hold each posture a little longer.",
    "Expect long stretches, gentle twists and a guided rest at the end.",
    "The teacher offers options for stiff hips and tired shoulders.",
    "Each week explores a different theme from the tradition.",
    "Live music accompanies the second half of the session.",
    "You will learn a simple routine to repeat at home.",
    "The group is kept small so everyone gets attention.",
    "Props are provided, and blankets for the final rest.",
    "We start seated, warm up the spine and build towards standing work.",
    "Short talks explain the ideas behind each exercise.",
    "Expect gentle humour and plenty of encouragement.",
    "The room is warm, quiet and softly lit.",
    "Suitable during pregnancy after a word with the teacher.",
    "A good companion to running, cycling or desk work.",
    "We finish with tea and time to share experiences.",
    "The second hour is optional for those who want to go deeper.",
    "Bring curiosity; leave any expectations at the door.",
    "Simple instructions, repeated often, so nobody feels lost.",
    "Sessions are recorded for those who miss a week.",
    "The practice draws on both classical and modern teachers.",
    "We pay attention to posture, alignment and ease.",
    "Expect a mix of movement, stillness and reflection.",
    "Each participant receives notes to take home.",
    "This series builds week by week, but you can join any time.",
    "The pace is slow enough for beginners and deep enough for regulars.",
    "Sound, silence and guided imagery alternate through the hour.",
    "We explore how attention changes what the body feels.",
    "Parts of the session take place outdoors when the weather allows.",
    "There is time at the end for individual questions.",
    "A gentle way back after injury or illness.",
    "Learn to notice tension early and let it go.",
    "The teacher trained for many years in India and Japan.",
    "Counting each breath, we settle the mind before the main practice.",
    "We use the wall, chairs and straps to make every pose accessible.",
    "A favourite with regulars who want to unwind before the weekend.",
    "Focus moves from the feet to the crown of the head.",
    "Quiet background music supports the longer holds.",
    "An introduction to the history and philosophy of the practice.",
    "We work with balance, coordination and concentration.",
    "Leave feeling lighter, clearer and more rested.",
]
CLOSINGS = [
    "Bring water and comfortable clothes.",
    "Mats are available at the door.",
    "Please arrive ten minutes early.",
    "Tea and snacks are served afterwards.",
    "Wear layers: the room cools down during the rest.",
    "The facilitator shares notes and a recording afterwards.",
    "Spaces are limited, so book early.",
    "Cancel up to a day before for a full refund.",
]
HOLD = "30 minutes"  # a paid booking's hold (bookings/services)
# Share of bookings of paid events in each state (the rest, 10%, expired holds); bookings of
# free events are confirmed but for 10% cancelled.
PAID_CONFIRMED, PAID_HELD, PAID_LAPSED, PAID_CANCELLED = 0.70, 0.095, 0.005, 0.10
SOLD_OUT_SHARE = 0.08  # events whose capacity is exactly the seats claimed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--facilitators", type=int, default=20)
    parser.add_argument("--heavy-bookings", type=int, default=50)
    parser.add_argument("--seed", type=float, default=0.2)
    args = parser.parse_args()
    if Event.objects.exists():
        sys.exit("seed_scale.py: this database already has events; the runner seeds a fresh one.")
    per_event = math.ceil(args.bookings / args.events)
    if args.users < 2 or per_event > args.users - 1 or args.heavy_bookings > args.events:
        sys.exit("seed_scale.py: too few users or events for these bookings")
    check_columns("events_event", EVENT_COLUMNS)
    check_columns("bookings_booking", BOOKING_COLUMNS)
    args.out.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    started = time.monotonic()

    def phase(name: str) -> None:
        nonlocal started
        phases[name] = round(time.monotonic() - started, 1)
        print(f"seed_scale: {name} {phases[name]} s", flush=True)
        started = time.monotonic()

    with transaction.atomic():
        facilitators = create_people(args.facilitators, Role.FACILITATOR, "facilitator")
        users = create_people(args.users, Role.USER, "user")
        token = issue_tokens(users[0])["access_token"]
        phase("people")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [args.seed])
        insert_events(cursor, args.events, [person.pk for person in facilitators])
        phase("events")
        # Numbered copies of the ids the bookings draw from (0-based, in insertion order).
        cursor.execute(
            "CREATE TEMPORARY TABLE seed_event ON COMMIT DROP AS SELECT row_number() OVER "
            "(ORDER BY id) - 1 AS n, id, price, currency, facilitator_id FROM events_event"
        )
        cursor.execute("ALTER TABLE seed_event ADD PRIMARY KEY (n)")
        cursor.execute(
            "CREATE TEMPORARY TABLE seed_user (n bigint PRIMARY KEY, id bigint) ON COMMIT DROP"
        )
        cursor.execute(
            "INSERT INTO seed_user SELECT n - 1, id FROM unnest(%s::bigint[]) "
            "WITH ORDINALITY AS u(id, n)",
            [[user.pk for user in users]],
        )
        # The ids come from the tables themselves, so the foreign keys hold by construction:
        # checking 5 million of them at COMMIT took 35 s at 1M bookings. Skipped by
        # turning triggers off for these two INSERTs, the way bulk loads do (a superuser's
        # setting), only while no trigger of the app's own is on these tables (that one would
        # be skipped too).
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        superuser = cursor.fetchone()[0]
        tables = ["bookings_booking", "bookings_bookingaudit", "bookings_attendee"]
        unchecked = superuser and not app_triggers(cursor, tables)
        if unchecked:
            cursor.execute("SET LOCAL session_replication_role = replica")
        insert_bookings(cursor, args.bookings, args.events, len(users), args.heavy_bookings)
        phase("bookings")
        cursor.execute(AUDIT_SQL)
        cursor.execute(ATTENDEE_SQL)
        if unchecked:
            cursor.execute("SET LOCAL session_replication_role = origin")
        phase("audit rows and attendees")
        # Statistics first: the recount's subquery must use the event's seat index.
        cursor.execute("ANALYZE events_event")
        cursor.execute("ANALYZE bookings_booking")
        Event.objects.recount_claimed_seats()
        cursor.execute(CAPACITY_SQL, {"sold_out": SOLD_OUT_SHARE})
        phase("seats_claimed and capacities")
        # What save() derives from the texts (the full-text words, events/models.py). Last:
        # each UPDATE of an event adds its words to the GIN index again.
        Event.objects.refresh_search_vector()
        phase("search words")
    phase("commit")
    with connection.cursor() as cursor:
        # The three UPDATEs left three dead versions of every event, in the table and in each
        # index: a live catalogue is not four times its size (its sequential scans would read
        # 230 MB instead of 65 at 100k). VACUUM FULL sets no visibility map: VACUUM follows.
        cursor.execute("VACUUM FULL events_event")
        phase("VACUUM FULL events_event")
        cursor.execute("VACUUM ANALYZE")
    phase("VACUUM ANALYZE")

    event_ids = list(Event.objects.order_by("pk").values_list("pk", flat=True))
    write_lines(args.out / "tokens.txt", [token])
    write_lines(args.out / "event_ids.txt", [str(pk) for pk in event_ids])
    meta = describe(args, users, phases)
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta))


EVENT_COLUMNS = [
    "title", "description", "type", "rating", "starts_at", "ends_at", "timezone", "location",
    "capacity", "price", "currency", "facilitator_id", "status", "seats_claimed",
    "cancelled_at", "cancellation_reason", "created_at", "updated_at", "max_seats_per_booking",
]  # fmt: skip
BOOKING_COLUMNS = [
    "user_id", "event_id", "facilitator_id", "status", "payment_status", "amount", "currency",
    "hold_expires_at", "version", "checkout_session_id", "checkout_url", "payment_intent_id",
    "created_at", "updated_at", "confirmed_at", "paid_at", "cancelled_at", "expired_at",
    "refunded_at", "seats",
]  # fmt: skip


def app_triggers(cursor, tables: list[str]) -> list[str]:
    """Triggers on these tables other than PostgreSQL's own (the foreign key checks)."""
    cursor.execute(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY("
        "SELECT oid FROM pg_class WHERE relname = ANY(%s))",
        [tables],
    )
    return [row[0] for row in cursor.fetchall()]


def check_columns(table: str, written: list[str]) -> None:
    """Stop, naming them, at NOT NULL columns without a default that the INSERT leaves out
    (a field added to the model since this script was written)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = current_schema() AND is_nullable = 'NO' "
            "AND column_default IS NULL AND is_identity = 'NO' AND is_generated = 'NEVER'",
            [table],
        )
        required = {row[0] for row in cursor.fetchall()}
    missing = sorted(required - set(written))
    if missing:
        sys.exit(f"seed_scale.py: {table} has columns this script does not fill: {missing}")


def insert_events(cursor, count: int, facilitator_ids: list[int]) -> None:
    type_draw = [TYPES.index(kind) + 1 for kind, share in TYPE_SHARES.items() for _ in range(share)]
    if set(TITLES) != set(TYPES) or set(TYPE_SHARES) != set(TYPES):
        sys.exit("seed_scale.py: TITLES and TYPE_SHARES must name bench/seed.py's TYPES")
    width = max(len(titles) for titles in TITLES.values())
    titles = [[TITLES[kind][n % len(TITLES[kind])] for n in range(width)] for kind in TYPES]
    cursor.execute(
        f"""
        INSERT INTO events_event ({", ".join(EVENT_COLUMNS)})
        SELECT
            prefix || ' ' || title || suffix,
            opening || ' ' || middle || ' ' || closing || ' ' || place_sentence,
            kind, rating, starts_at, starts_at + duration, timezone, location,
            1000,  -- the capacity follows the seats claimed, once the bookings are in
            price, 'EUR', facilitator_id, 'scheduled', 0, NULL, '', created_at, now(),
            %(max_seats)s
        FROM (
            SELECT
                (%(prefixes)s::text[])[1 + floor(random() * %(n_prefixes)s)::int] AS prefix,
                (%(titles)s::text[])[kind_n][1 + floor(random() * %(width)s)::int] AS title,
                (%(suffixes)s::text[])[1 + floor(random() * %(n_suffixes)s)::int] AS suffix,
                (%(openings)s::text[])[1 + floor(random() * %(n_openings)s)::int] AS opening,
                (%(middles)s::text[])[1 + floor(random() * %(n_middles)s)::int] AS middle,
                (%(closings)s::text[])[1 + floor(random() * %(n_closings)s)::int] AS closing,
                CASE WHEN location = 'Online' THEN 'Streamed live; join from anywhere.'
                     ELSE 'Held in ' || location || '.' END AS place_sentence,
                (%(types)s::text[])[kind_n] AS kind,
                (30 + floor(random() * 21)) / 10.0 AS rating,
                date_trunc('minute', now() + interval '1 day' + random() * interval '364 days')
                    AS starts_at,
                CASE WHEN kind_n = %(retreat)s THEN interval '48 hours'
                     ELSE (1 + floor(random() * 3)) * interval '1 hour' END AS duration,
                (%(timezones)s::text[])[1 + floor(random() * %(n_timezones)s)::int] AS timezone,
                location,
                CASE WHEN random() < 0.3 THEN 0 ELSE 10 + floor(random() * 191) END AS price,
                (%(facilitators)s::bigint[])[1 + mod(g, %(n_facilitators)s)] AS facilitator_id,
                now() - random() * interval '90 days' AS created_at
            FROM (
                SELECT g,
                       (%(type_draw)s::int[])[1 + floor(random() * %(n_type_draw)s)::int]
                           AS kind_n,
                       (%(locations)s::text[])[1 + floor(random() * %(n_locations)s)::int]
                           AS location
                FROM generate_series(0, %(count)s::int - 1) AS g
            ) drawn
        ) event
        """,  # noqa: S608 (the column names are this module's constants)
        {
            "count": count,
            "max_seats": settings.MAX_SEATS_PER_BOOKING,
            "types": TYPES,
            "retreat": TYPES.index("Retreat") + 1,
            "type_draw": type_draw,
            "n_type_draw": len(type_draw),
            "titles": titles,
            "width": width,
            **sized("prefixes", PREFIXES),
            **sized("suffixes", SUFFIXES),
            **sized("openings", OPENINGS),
            **sized("middles", MIDDLES),
            **sized("closings", CLOSINGS),
            **sized("timezones", TIMEZONES),
            **sized("locations", LOCATIONS),
            **sized("facilitators", facilitator_ids),
        },
    )


def sized(name: str, values: list) -> dict:
    return {name: values, f"n_{name}": len(values)}


def insert_bookings(cursor, count: int, events: int, users: int, heavy: int) -> None:
    """`count` bookings of users 1.. (booking i: event i mod events, the k-th of that event,
    k = i div events, goes to a user no other booking of that event has), then user 0's."""
    per_event = math.ceil(count / events)
    others = users - 1  # user 0 books only its own `heavy` events
    step = others // per_event  # k * step mod others differs for every k < per_event
    cursor.execute(
        f"""
        INSERT INTO bookings_booking ({", ".join(BOOKING_COLUMNS)})
        SELECT
            seed_user.id, event_id, facilitator_id,
            CASE WHEN state IN ('paid', 'free') THEN 'confirmed'
                 WHEN state IN ('held', 'lapsed') THEN 'pending'
                 WHEN state IN ('cancelled', 'free_cancelled') THEN 'cancelled'
                 ELSE 'expired' END,
            CASE WHEN state IN ('paid', 'free') THEN state
                 WHEN state = 'free_cancelled' THEN 'free' ELSE 'unpaid' END,
            price, currency,
            CASE WHEN state IN ('held', 'lapsed', 'expired') THEN created_at + %(hold)s::interval
                 END,
            1, '', '', '', created_at, now(),
            CASE WHEN state IN ('paid', 'free') THEN created_at END,
            CASE WHEN state = 'paid' THEN created_at END,
            CASE WHEN state IN ('cancelled', 'free_cancelled')
                 THEN created_at + interval '1 hour' END,
            CASE WHEN state = 'expired' THEN created_at + %(hold)s::interval END,
            NULL, 1
        FROM (
            SELECT *,
                   -- A hold still running was made minutes ago; a lapsed one has just run
                   -- out (the scheduler expires it within a minute); the rest are older.
                   CASE state
                       WHEN 'held' THEN now() - age * interval '10 minutes'
                       WHEN 'lapsed' THEN now() - %(hold)s::interval - age * interval '1 minute'
                       ELSE now() - interval '1 hour' - age * interval '60 days'
                   END AS created_at
            FROM (
                SELECT drawn.*, seed_event.id AS event_id, seed_event.facilitator_id,
                       seed_event.price, seed_event.currency,
                       CASE WHEN seed_event.price = 0 THEN
                                CASE WHEN roll < 0.9 THEN 'free' ELSE 'free_cancelled' END
                            WHEN roll < %(confirmed)s THEN 'paid'
                            WHEN roll < %(held)s THEN 'held'
                            WHEN roll < %(lapsed)s THEN 'lapsed'
                            WHEN roll < %(cancelled)s THEN 'cancelled'
                            ELSE 'expired' END AS state
                FROM (
                    SELECT mod(i, %(events)s::int) AS event_n, i / %(events)s::int AS k,
                           random() AS roll, random() AS age
                    FROM generate_series(0, %(count)s::int - 1) AS i
                ) drawn
                JOIN seed_event ON seed_event.n = drawn.event_n
            ) with_state
        ) booking
        JOIN seed_user ON seed_user.n = 1 + mod(
            mod(booking.event_n * 7919, %(others)s::int) + booking.k * %(step)s::int,
            %(others)s::int
        )
        """,  # noqa: S608 (the column names are this module's constants)
        {
            "count": count,
            "events": events,
            "others": others,
            "step": step,
            "hold": HOLD,
            "confirmed": PAID_CONFIRMED,
            "held": PAID_CONFIRMED + PAID_HELD,
            "lapsed": PAID_CONFIRMED + PAID_HELD + PAID_LAPSED,
            "cancelled": PAID_CONFIRMED + PAID_HELD + PAID_LAPSED + PAID_CANCELLED,
        },
    )
    # User 0: `heavy` confirmed bookings spread over the catalogue, one an hour apart.
    cursor.execute(
        f"""
        INSERT INTO bookings_booking ({", ".join(BOOKING_COLUMNS)})
        SELECT seed_user.id, seed_event.id, seed_event.facilitator_id, 'confirmed',
               CASE WHEN seed_event.price = 0 THEN 'free' ELSE 'paid' END,
               seed_event.price, seed_event.currency, NULL, 1, '', '', '',
               now() - j * interval '1 hour', now(), now() - j * interval '1 hour',
               CASE WHEN seed_event.price = 0 THEN NULL ELSE now() - j * interval '1 hour' END,
               NULL, NULL, NULL
        FROM generate_series(0, %(heavy)s::int - 1) AS j
        JOIN seed_event ON seed_event.n = j * (%(events)s::int / %(heavy)s::int)
        JOIN seed_user ON seed_user.n = 0
        """,  # noqa: S608 (the column names are this module's constants)
        {"heavy": heavy, "events": events},
    )


# One seat each, its booker's (as migration bookings/0008 gives the bookings made before groups).
ATTENDEE_SQL = """
    INSERT INTO bookings_attendee (booking_id, position, name, email, status, is_booker,
        created_at)
    SELECT booking.id, 1, person.name, person.email, 'active', TRUE, booking.created_at
    FROM bookings_booking booking JOIN accounts_user person ON person.id = booking.user_id
"""

AUDIT_SQL = """
    INSERT INTO bookings_bookingaudit (booking_id, version, change, from_status, to_status,
        from_payment_status, to_payment_status, actor_id, reason, created_at)
    SELECT id, 1, 'booking.created', '', status, '', payment_status, user_id, 'booked',
           created_at
    FROM bookings_booking
"""

# After the recount: a share of events exactly full, the others with 5 to 200 seats to spare.
CAPACITY_SQL = """
    UPDATE events_event SET capacity = CASE
        WHEN random() < %(sold_out)s THEN greatest(seats_claimed, 1)
        ELSE seats_claimed + 5 + floor(random() * 196)::int END
"""


def describe(args: argparse.Namespace, users: list, phases: dict) -> dict:
    by_state = (
        Booking.objects.order_by("status", "payment_status")
        .values("status", "payment_status")
        .annotate(count=Count("pk"))
    )
    states = {f"{row['status']}/{row['payment_status']}": row["count"] for row in by_state}
    catalogue = Event.objects.bookable().with_seats_left()
    word = "breath"
    return {
        "events": Event.objects.count(),
        "facilitators": args.facilitators,
        "users": len(users),
        "bookings": Booking.objects.count(),
        "bookings_by_state": states,
        "holds_lapsed": Booking.objects.stale_holds().count(),  # counted in pending/unpaid
        "heavy_user_index": 0,
        "heavy_user_bookings": Booking.objects.filter(user=users[0]).count(),
        "events_sold_out": catalogue.filter(seats_left__lte=0).count(),
        "events_free": Event.objects.filter(price=0).count(),
        f"events_containing_{word}": Event.objects.filter(
            Q(title__icontains=word) | Q(description__icontains=word)
        ).count(),
        "seed_phases_seconds": phases,
        "seconds": round(sum(phases.values()), 1),
    }


if __name__ == "__main__":
    main()
