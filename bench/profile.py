"""Cost of one request of each scenario, in-process, on the last benchmark run's data.

No server and no load: each endpoint goes through Django's full middleware stack with the
test client, so the numbers are CPU milliseconds and SQL queries per request, much less
disturbed by whatever else runs on the machine than wrk's throughput. With --pyinstrument
(pyinstrument installed in .venv) it also writes a call tree per scenario into
bench/results/profile-<scenario>.txt and an EXPLAIN ANALYZE of each distinct query.

    .venv/bin/python bench/profile.py [--requests 200] [--pyinstrument]
"""

import argparse
import json
import statistics
import time
from collections import Counter

from last_run import RESULTS, WORK  # first: sets Django up on the last run

# isort: split
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    tokens = (WORK / "tokens.txt").read_text().split("\n")
    meta = json.loads((WORK / "meta.json").read_text())
    event_ids = (WORK / "event_ids.txt").read_text().split()
    # The spread's list from its end (the runner takes it from the start), past the pairs
    # earlier profiles of this data booked.
    pairs = [line.split() for line in (WORK / "spread_pairs.txt").read_text().splitlines()][::-1]
    used_file = WORK / "profile_pairs_used"
    used = int(used_file.read_text()) if used_file.is_file() else 0
    spread = iter(pairs[used:])  # each booking takes the next pair, whatever `n` is
    used_file.write_text(str(used + 20 + args.requests + 1 + (100 if args.pyinstrument else 0)))
    client = Client(HTTP_HOST="127.0.0.1")

    def bearer(index: int) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {tokens[index]}"}

    def book(user_index: str, event_id: str):
        return client.post(
            "/bookings/",
            {"event_id": int(event_id)},
            content_type="application/json",
            **bearer(int(user_index)),
        )

    scenarios = {
        "healthz": lambda n: client.get("/healthz"),
        "events_list": lambda n: client.get("/events", {"type": "Yoga", "rating": "4.5"}),
        "event_detail": lambda n: client.get(f"/events/{event_ids[n % len(event_ids)]}"),
        "my_bookings": lambda n: client.get("/bookings/", **bearer(meta["heavy_user_index"])),
        "book_spread": lambda n: book(*next(spread)),
    }
    report = {}
    offset = 0
    for name, call in scenarios.items():
        for n in range(20):  # warm: imports, connection, caches
            call(offset + n)
        offset += 20
        statuses: Counter = Counter()
        wall, cpu = [], []
        for n in range(args.requests):
            started_wall, started_cpu = time.perf_counter(), time.process_time()
            statuses[call(offset + n).status_code] += 1
            wall.append(time.perf_counter() - started_wall)
            cpu.append(time.process_time() - started_cpu)
        offset += args.requests
        with CaptureQueriesContext(connection) as queries:
            call(offset)
        offset += 1
        report[name] = {
            "wall_ms_median": round(1000 * statistics.median(wall), 2),
            "cpu_ms_median": round(1000 * statistics.median(cpu), 2),
            "queries": len(queries.captured_queries),
            "statuses": dict(statuses),
            "sql": [query["sql"] for query in queries.captured_queries],
        }
        print(
            f"{name:14} wall {report[name]['wall_ms_median']:6.2f} ms  cpu "
            f"{report[name]['cpu_ms_median']:6.2f} ms  queries {report[name]['queries']}  "
            f"{dict(statuses)}",
            flush=True,
        )
        if args.pyinstrument:
            offset = write_call_tree(name, call, offset)
    if args.pyinstrument:
        write_explains(report)
    (RESULTS / "profile.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'profile.json'}")


def write_call_tree(name: str, call, offset: int) -> int:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    for n in range(100):
        call(offset + n)
    profiler.stop()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    (RESULTS / f"profile-{name}.txt").write_text(text)
    return offset + 100


def write_explains(report: dict) -> None:
    lines = []
    with connection.cursor() as cursor:
        for name, entry in report.items():
            for sql in entry["sql"]:
                head = sql.lstrip().split()[0].upper()
                if head not in {"SELECT", "INSERT", "UPDATE"}:
                    lines += [f"## {name}: {sql}", ""]
                    continue
                # Writes are explained inside a transaction that is rolled back.
                cursor.execute("BEGIN")
                try:
                    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                except Exception as error:
                    plan = f"(not explained: {error})"
                finally:
                    cursor.execute("ROLLBACK")
                lines += [f"## {name}", "", "```sql", sql, "```", "", "```", plan, "```", ""]
    (RESULTS / "explain.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
