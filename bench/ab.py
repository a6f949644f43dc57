"""A/B of one code change on the spread's booking request, in-process, on the bench data.

The machine's speed drifts by 2x from one minute to the next (other tenants), so two runs
compared one after the other mostly measure the drift. This alternates the code under test
and its replacement request by request in one process, so both halves see the same machine
at the same moment, and prints the median CPU time of each (a replacement by itself, the
`--check` run, measures about 0%).

    .venv/bin/python bench/ab.py --replace accounts.authentication.JWTAuthentication.get_user \\
        --with rest_framework_simplejwt.authentication.JWTAuthentication.get_user

`--replace` names an attribute (module.attribute or module.Class.attribute); on every other
request it is set to the object `--with` names (the old code, say), then set back. Paid or
free events (`--events paid|free|any`); each request books a (user, event) pair the runner
has not used, taken from the end of the seeded list. Needs one `bench/run.py` first.
"""

import argparse
import statistics
import time
from importlib import import_module

from last_run import WORK  # first: sets Django up on the last run

# isort: split
from django.test import Client


def resolve(dotted: str) -> tuple[object, str]:
    """The object holding `dotted`'s last part, and that part's name."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            holder = import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:-1]:
            holder = getattr(holder, name)
        return holder, parts[-1]
    raise SystemExit(f"cannot import {dotted}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replace", required=True, help="the attribute to swap")
    parser.add_argument("--with", dest="replacement", help="what to swap in (dotted path)")
    parser.add_argument("--check", action="store_true", help="swap in the attribute itself")
    parser.add_argument("--events", choices=["paid", "free", "any"], default="paid")
    parser.add_argument(
        "--requests", type=int, default=300, help="pairs drawn, before keeping paid or free"
    )
    args = parser.parse_args()
    if not args.check and not args.replacement:
        parser.error("--with or --check")

    import logging

    logging.disable(logging.CRITICAL)  # the server logs to a file; here, to nowhere
    from events.models import Event

    holder, name = resolve(args.replace)
    original = getattr(holder, name)
    if args.check:
        replacement = original
    else:
        replacement_holder, replacement_name = resolve(args.replacement)
        replacement = getattr(replacement_holder, replacement_name)

    tokens = (WORK / "tokens.txt").read_text().split("\n")
    pairs = [line.split() for line in (WORK / "spread_pairs.txt").read_text().splitlines()][::-1]
    used_file = WORK / "profile_pairs_used"  # shared with bench/profile.py
    used = int(used_file.read_text()) if used_file.is_file() else 0
    pairs = pairs[used : used + args.requests + 10]
    used_file.write_text(str(used + args.requests + 10))
    paid = set(Event.objects.filter(price__gt=0).values_list("id", flat=True))
    if args.events != "any":
        pairs = [pair for pair in pairs if (int(pair[1]) in paid) == (args.events == "paid")]

    client = Client(HTTP_HOST="127.0.0.1")
    times: dict[bool, list[float]] = {False: [], True: []}
    for number, (user_index, event_id) in enumerate(pairs):
        swapped = number % 2 == 1
        setattr(holder, name, replacement if swapped else original)
        started = time.process_time()
        response = client.post(
            "/bookings/",
            {"event_id": int(event_id)},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tokens[int(user_index)]}",
        )
        elapsed = time.process_time() - started
        setattr(holder, name, original)
        if response.status_code != 201:
            raise SystemExit(f"booking answered {response.status_code}: {response.content!r}")
        if number >= 10:  # the first requests warm imports, caches and the connection
            times[swapped].append(elapsed)

    current, other = (1000 * statistics.median(times[key]) for key in (False, True))
    print(
        f"{args.events} bookings, {len(times[False])} + {len(times[True])} requests: "
        f"median CPU {current:.2f} ms as it is, {other:.2f} ms with the replacement "
        f"({(other - current) / current:+.0%})"
    )


if __name__ == "__main__":
    main()
