"""`bench/run.py --scale`: the catalogue at marketplace scale, beside the ceiling (issue 20).

For each size (by default 1,000 events / 10,000 bookings, then 100,000 events / 1,000,000
bookings), in this order: a fresh copy of the migrated database, seeded with bulk SQL
(bench/seed_scale.py); `EXPLAIN (ANALYZE, BUFFERS)` of every SELECT each path runs
(bench/explain_catalogue.py); then gunicorn with the production settings, once with the
catalogue cache off (CATALOGUE_CACHE_SECONDS=0) and once at its production default, each path
measured with wrk between two ceilings (`GET /healthz`). Results: bench/results/scale.md and
scale.json. Nothing is booked while measuring: every path is a read.

It keeps out of the way of a default `make bench`: its own database (ahoum_bench_scale), port
(8766), Redis database (14) and files (bench/.work/scale/).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import run as bench

WORK = bench.WORK / "scale"
DEFAULT_SIZES = "1000:10000:5000,100000:1000000:20000"
PAGE_SIZE = 20  # REST_FRAMEWORK["PAGE_SIZE"]
DEEP_PAGE = 200

# Targets from issue 20, on the uncached catalogue.
MIN_GROWTH = 0.8  # ratio to the ceiling at the largest size over the ratio at the smallest
MAX_P99_MS = 150  # at the largest size, 16 connections
MIN_RATIO_SMALL = 0.15  # each catalogue path at the smallest size


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    path: str  # what wrk requests ("/" + an id from the file for the detail)
    catalogue: bool = True  # a list of the catalogue (the growth and p99 targets)
    compare_to: str = ""  # the smallest size has no such page: compare with this one


SCENARIOS = [
    Scenario("events", "`GET /events`", "/events"),
    Scenario(
        "events_type_rating", "`GET /events?type=Yoga&rating=4.5`", "/events?type=Yoga&rating=4.5"
    ),
    Scenario("events_search", "`GET /events?search=breath`", "/events?search=breath"),
    Scenario(
        "events_price_available",
        "`GET /events?price_max=50&available=true&ordering=-rating`",
        "/events?price_max=50&available=true&ordering=-rating",
    ),
    Scenario(
        "events_page_200",
        f"`GET /events?page={DEEP_PAGE}`",
        f"/events?page={DEEP_PAGE}",
        compare_to="events",
    ),
    Scenario("event_detail", "`GET /events/{id}` (random ids)", "/events/{id}", catalogue=False),
    Scenario("my_bookings", "`GET /bookings/` (50 bookings)", "/bookings/", catalogue=False),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@dataclass(frozen=True)
class Size:
    events: int
    bookings: int
    users: int

    @property
    def label(self) -> str:
        return f"{short(self.events)} events, {short(self.bookings)} bookings"

    @property
    def key(self) -> str:
        return f"{short(self.events)}/{short(self.bookings)}"


def short(number: int) -> str:
    if number >= 1_000_000 and number % 1_000_000 == 0:
        return f"{number // 1_000_000}M"
    if number >= 1000 and number % 1000 == 0:
        return f"{number // 1000}k"
    return str(number)


def parse_sizes(text: str) -> list[Size]:
    sizes = []
    for part in text.split(","):
        events, bookings, users = (int(value) for value in part.split(":"))
        sizes.append(Size(events, bookings, users))
    return sizes


def main(args: argparse.Namespace) -> None:
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk, the load generator: apt-get install -y wrk")
    sizes = parse_sizes(args.scale_sizes)
    names = [name for name in args.scale_paths.split(",") if name] or list(BY_NAME)
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        sys.exit(f"--scale-paths: unknown {unknown}; choose from {list(BY_NAME)}")
    variants = {"both": ["uncached", "cached"], "uncached": ["uncached"], "cached": ["cached"]}[
        args.scale_cache
    ]
    WORK.mkdir(parents=True, exist_ok=True)
    bench.RESULTS.mkdir(exist_ok=True)
    admin_dsn = f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/postgres"
    database_url = f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.db}"
    env = bench.server_environment(database_url, args)
    # The host wrk sends (with its port) is then one the catalogue caches pages for
    # (events/cache.py: only hosts written out in ALLOWED_HOSTS or PUBLIC_BASE_URL), as a
    # production host is.
    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{args.port}"
    (WORK / "env.json").write_text(
        json.dumps({key: env[key] for key in [*bench.SERVER_KEYS, "PUBLIC_BASE_URL"] if key in env})
        + "\n"
    )
    started = time.monotonic()
    bench.say("collectstatic (production uses the manifest storage)")
    bench.run([bench.PYTHON, "manage.py", "collectstatic", "--no-input", "-v", "0"], env)
    server = bench.gunicorn_settings(env)
    data, explains, runs = {}, {}, []
    for size in sizes:
        bench.say(f"=== {size.label}, {size.users} users")
        bench.build_database(admin_dsn, args.db, env, fresh=args.fresh_migrate)
        args.fresh_migrate = False  # once per run is enough
        flush(args.redis_url)
        seed_started = time.monotonic()
        bench.run(
            [
                bench.PYTHON,
                str(bench.BENCH / "seed_scale.py"),
                "--out",
                str(WORK),
                "--events",
                str(size.events),
                "--bookings",
                str(size.bookings),
                "--users",
                str(size.users),
            ],
            env,
        )
        meta = json.loads((WORK / "meta.json").read_text())
        meta["seed_seconds_total"] = round(time.monotonic() - seed_started, 1)
        data[size.key] = meta
        scenarios = [
            BY_NAME[name]
            for name in names
            if name != "events_page_200" or meta["events"] >= DEEP_PAGE * PAGE_SIZE
        ]
        token = (WORK / "tokens.txt").read_text().split()[0]
        if not args.no_explain:
            bench.say("EXPLAIN (ANALYZE, BUFFERS) of every SELECT, in-process, uncached")
            phase_started = time.monotonic()
            explains[size.key] = explain(env, scenarios, token)
            meta["explain_seconds"] = round(time.monotonic() - phase_started, 1)
        for variant in variants:
            phase_started = time.monotonic()
            runs += measure_variant(args, env, size, variant, scenarios, token, database_url)
            meta[f"measure_{variant}_seconds"] = round(time.monotonic() - phase_started, 1)
        # After every size: a run cut short still leaves what it measured.
        report = build_report(args, server, sizes, data, explains, runs, variants)
        report["machine"]["load_average_at_start"] = load_at_start
        report["total_seconds"] = round(time.monotonic() - started)
        (bench.RESULTS / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
        (bench.RESULTS / "scale.md").write_text(render_markdown(report))
    print(render_results(report))
    bench.say(f"wrote {bench.RESULTS / 'scale.md'} and scale.json")


def flush(redis_url: str) -> None:
    """Cached pages of another size or variant belong to another catalogue."""
    if redis_url:
        redis.Redis.from_url(redis_url).flushdb()


def explain(env: dict[str, str], scenarios: list[Scenario], token: str) -> list[dict]:
    ids = (WORK / "event_ids.txt").read_text().split()
    spec = [
        {
            "name": scenario.name,
            "path": scenario.path.replace("{id}", ids[len(ids) // 2]),
            "token": token if scenario.name == "my_bookings" else "",
        }
        for scenario in scenarios
    ]
    (WORK / "explain_spec.json").write_text(json.dumps(spec, indent=2))
    out = WORK / "explain.json"
    bench.run(
        [
            bench.PYTHON,
            str(bench.BENCH / "explain_catalogue.py"),
            "--spec",
            str(WORK / "explain_spec.json"),
            "--out",
            str(out),
        ],
        dict(env, CATALOGUE_CACHE_SECONDS="0"),
    )
    return json.loads(out.read_text())


def measure_variant(
    args: argparse.Namespace,
    env: dict[str, str],
    size: Size,
    variant: str,
    scenarios: list[Scenario],
    token: str,
    database_url: str,
) -> list[dict]:
    """gunicorn with the cache off or at its default; ceiling, path, ceiling, path, ..."""
    server_env = dict(env)
    if variant == "uncached":
        server_env["CATALOGUE_CACHE_SECONDS"] = "0"
    flush(args.redis_url)
    bench.say(f"gunicorn, catalogue {variant} ({size.label})")
    runs = []
    with bench.gunicorn(server_env, args.port, work=WORK) as base_url:
        processes = bench.ServerProcesses(int((WORK / "gunicorn.pid").read_text()), database_url)
        try:
            measure = Measure(args, base_url, processes, token)
            for scenario in scenarios:  # imports, connections, and for `cached` the cache
                measure.scenario(scenario, seconds=2)
            for repeat in range(args.repeats):
                previous = None
                for scenario in scenarios:
                    before = previous or measure.ceiling()
                    result = measure.scenario(scenario, seconds=args.duration)
                    after = measure.ceiling()
                    previous = after
                    ceiling_rps = statistics.mean([before["rps"], after["rps"]])
                    ceiling_cpu = statistics.mean(
                        c["cpu_ms_per_request"]["total"] for c in (before, after)
                    )
                    entry = {
                        "size": size.key,
                        "variant": variant,
                        "repeat": repeat + 1,
                        "scenario": scenario.name,
                        "ceiling": before,
                        "ceiling_after": after,
                        "ceiling_rps": round(ceiling_rps, 1),
                        "result": result,
                        "ratio": round(result["rps"] / ceiling_rps, 4),
                        "cpu_ratio": round(
                            ceiling_cpu / max(0.001, result["cpu_ms_per_request"]["total"]), 4
                        ),
                    }
                    runs.append(entry)
                    bench.say(
                        f"  {size.key} {variant} {scenario.name}: {result['rps']:.0f}/s "
                        f"p50 {result['p50_ms']} p99 {result['p99_ms']} ms "
                        f"{result['statuses']} | ceiling {before['rps']:.0f} / "
                        f"{after['rps']:.0f}/s | ratio {entry['ratio']:.3f} "
                        f"(cpu {entry['cpu_ratio']:.3f})"
                    )
        finally:
            processes.database.close()
    return runs


class Measure:
    def __init__(self, args, base_url: str, processes, token: str):
        self.args, self.base_url, self.processes, self.token = args, base_url, processes, token

    def wrk(self, url: str, script: str, script_args: list[str], seconds: int) -> dict:
        return bench.wrk(
            url,
            script,
            script_args,
            connections=self.args.connections,
            threads=self.args.threads,
            seconds=seconds,
            server=self.processes,
        )

    def ceiling(self) -> dict:
        return self.wrk(self.base_url + "/healthz", "get.lua", [""], self.args.duration)

    def scenario(self, scenario: Scenario, *, seconds: int) -> dict:
        if scenario.name == "event_detail":
            ids = str(WORK / "event_ids.txt")
            return self.wrk(self.base_url + "/", "event_detail.lua", [ids], seconds)
        token = self.token if scenario.name == "my_bookings" else ""
        return self.wrk(self.base_url + scenario.path, "get.lua", [token], seconds)


# --- Report -----------------------------------------------------------------------------------


def build_report(args, server, sizes, data, explains, runs, variants) -> dict:
    summary: dict = {}
    for run in runs:
        cell = summary.setdefault(run["size"], {}).setdefault(run["variant"], {})
        cell.setdefault(run["scenario"], []).append(run)
    for by_variant in summary.values():
        for by_scenario in by_variant.values():
            for name, mine in by_scenario.items():
                by_scenario[name] = summarize(mine)
    small, large = sizes[0].key, sizes[-1].key
    growth: dict = {}
    if len(sizes) > 1:
        for variant in variants:
            growth[variant] = {}
            for scenario in SCENARIOS:
                big = summary.get(large, {}).get(variant, {}).get(scenario.name)
                base_name = scenario.name
                if base_name not in summary.get(small, {}).get(variant, {}):
                    base_name = scenario.compare_to
                base = summary.get(small, {}).get(variant, {}).get(base_name)
                if big and base:
                    growth[variant][scenario.name] = {
                        "compared_to": base_name,
                        "growth": round(big["ratio_median"] / base["ratio_median"], 3),
                    }
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_generator": "wrk on the same machine (and PostgreSQL too)",
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
        "server": server,
        "settings": "DEBUG=False, SECURE_SSL_REDIRECT=False, CONN_MAX_AGE default (60), "
        "STRIPE_SECRET_KEY and CRM_WEBHOOK_URL empty, "
        + (f"REDIS_URL={args.redis_url}" if args.redis_url else "no REDIS_URL")
        + f", PUBLIC_BASE_URL=http://127.0.0.1:{args.port}; uncached: "
        "CATALOGUE_CACHE_SECONDS=0; cached: CATALOGUE_CACHE_SECONDS="
        + (
            str(args.catalogue_cache_seconds)
            if args.catalogue_cache_seconds is not None
            else "default (60 with REDIS_URL)"
        ),
        "config": {
            "sizes": [size.__dict__ for size in sizes],
            "duration_seconds": args.duration,
            "repeats": args.repeats,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "variants": variants,
        },
        "data": data,
        "summary": summary,
        "growth": growth,
        "targets": evaluate_targets(summary, growth, small, large, len(sizes) > 1),
        "explain": explains,
        "runs": runs,
    }


def summarize(mine: list[dict]) -> dict:
    ceilings = [run["ceiling_rps"] for run in mine]
    return {
        "rounds": len(mine),
        "rps_median": median(run["result"]["rps"] for run in mine),
        "p50_ms_median": median(run["result"]["p50_ms"] for run in mine),
        "p99_ms_median": median(run["result"]["p99_ms"] for run in mine),
        "p99_ms_worst": max(run["result"]["p99_ms"] for run in mine),
        "ceiling_rps_median": median(ceilings),
        "ceiling_p99_ms_median": median(
            statistics.mean(c["p99_ms"] for c in (run["ceiling"], run["ceiling_after"]))
            for run in mine
        ),
        "ratio_median": median(run["ratio"] for run in mine),
        "ratio_range": [min(run["ratio"] for run in mine), max(run["ratio"] for run in mine)],
        "cpu_ratio_median": median(run["cpu_ratio"] for run in mine),
        "cpu_ms_per_request_median": median(
            run["result"]["cpu_ms_per_request"]["total"] for run in mine
        ),
        "statuses": bench.merge_statuses(run["result"]["statuses"] for run in mine),
    }


def median(values) -> float:
    return round(statistics.median(list(values)), 4)


def evaluate_targets(summary, growth, small: str, large: str, two_sizes: bool) -> list[dict]:
    """Issue 20's targets, on the uncached catalogue (medians of the rounds)."""
    targets = []
    uncached_small = summary.get(small, {}).get("uncached", {})
    uncached_large = summary.get(large, {}).get("uncached", {})
    for scenario in SCENARIOS:
        if not scenario.catalogue:
            continue
        big, base = uncached_large.get(scenario.name), uncached_small.get(scenario.name)
        grown = growth.get("uncached", {}).get(scenario.name)
        if two_sizes and big and grown:
            errors = count_errors(big["statuses"])
            met = grown["growth"] >= MIN_GROWTH and big["p99_ms_median"] < MAX_P99_MS
            base_name = grown["compared_to"]
            targets.append(
                {
                    "target": f"{scenario.label} at {large}",
                    "wanted": f">= {MIN_GROWTH}x its ratio at {small}"
                    + (f" (`{base_name}`'s)" if base_name != scenario.name else "")
                    + f", p99 < {MAX_P99_MS} ms",
                    "measured": f"{grown['growth']:.2f}x ({big['ratio_median']:.1%}), "
                    f"p99 {big['p99_ms_median']:.0f} ms"
                    + (f", {errors} non-2xx" if errors else ""),
                    "met": met and not errors,
                }
            )
        if base:
            errors = count_errors(base["statuses"])
            targets.append(
                {
                    "target": f"{scenario.label} at {small}",
                    "wanted": f">= {MIN_RATIO_SMALL:.0%} of the ceiling",
                    "measured": f"{base['ratio_median']:.1%}"
                    + (f", {errors} non-2xx" if errors else ""),
                    "met": base["ratio_median"] >= MIN_RATIO_SMALL and not errors,
                }
            )
    if two_sizes:
        for name in ("event_detail", "my_bookings"):
            grown = growth.get("uncached", {}).get(name)
            if grown:
                big, base = uncached_large[name], uncached_small[name]
                errors = count_errors(big["statuses"])
                targets.append(
                    {
                        "target": f"{BY_NAME[name].label}, {small} to {large}",
                        "wanted": f">= {MIN_GROWTH}x its ratio at {small}",
                        "measured": f"{grown['growth']:.2f}x ({base['ratio_median']:.1%} -> "
                        f"{big['ratio_median']:.1%})" + (f", {errors} non-2xx" if errors else ""),
                        "met": grown["growth"] >= MIN_GROWTH and not errors,
                    }
                )
    return targets


def count_errors(statuses: dict[str, int]) -> int:
    return sum(count for status, count in statuses.items() if not status.startswith("2"))


def render_results(report: dict) -> str:
    """The results tables and the targets (the top of scale.md, also printed at the end)."""
    sizes = [Size(**size) for size in report["config"]["sizes"]]
    small, large = sizes[0].key, sizes[-1].key
    lines = []
    for variant in report["config"]["variants"]:
        what = (
            "catalogue cache off (CATALOGUE_CACHE_SECONDS=0)"
            if variant == "uncached"
            else "catalogue cache at its production default"
        )
        header = "| Path |" + "".join(
            f" {size.key} req/s | ratio | p50 / p99 ms |" for size in sizes
        )
        lines += [
            f"### {variant.capitalize()}: {what}",
            "",
            header + (" Growth |" if len(sizes) > 1 else ""),
            "|---|" + "---:|---:|---:|" * len(sizes) + ("---:|" if len(sizes) > 1 else ""),
        ]
        ceiling_cells = ""
        for size in sizes:
            cells = report["summary"].get(size.key, {}).get(variant, {})
            ceilings = [cell["ceiling_rps_median"] for cell in cells.values()]
            p99s = [cell["ceiling_p99_ms_median"] for cell in cells.values()]
            ceiling_cells += (
                f" {statistics.median(ceilings):,.0f} | 100% | p99 {statistics.median(p99s):.0f} |"
                if ceilings
                else " | | |"
            )
        growth_cell = " |" if len(sizes) > 1 else ""
        lines.append("| ceiling `GET /healthz` (median) |" + ceiling_cells + growth_cell)
        for scenario in SCENARIOS:
            row = f"| {scenario.label} |"
            present = False
            for size in sizes:
                cell = report["summary"].get(size.key, {}).get(variant, {}).get(scenario.name)
                if cell:
                    present = True
                    errors = count_errors(cell["statuses"])
                    row += (
                        f" {cell['rps_median']:,.0f} | {cell['ratio_median']:.1%} "
                        f"| {cell['p50_ms_median']:.0f} / {cell['p99_ms_median']:.0f}"
                        + (f" ({errors} non-2xx)" if errors else "")
                        + " |"
                    )
                else:
                    row += " | | |"
            if len(sizes) > 1:
                grown = report["growth"].get(variant, {}).get(scenario.name)
                row += f" {grown['growth']:.2f}x |" if grown else " |"
            if present:
                lines.append(row)
        lines.append("")
    if len(sizes) > 1:
        lines += [
            f"*Growth*: the ratio to the ceiling at {large} over the ratio at {small} (1.00x: "
            f"the path keeps its share of what the stack can serve; `?page={DEEP_PAGE}` is "
            f"compared with `GET /events` at {small}, which has no such page).",
            "",
        ]
    lines += ["## Targets (issue 20, uncached)", "", "| Target | Wanted | Measured | Met |"]
    lines.append("|---|---|---|---|")
    for target in report["targets"]:
        lines.append(
            f"| {target['target']} | {target['wanted']} | {target['measured']} "
            f"| {'yes' if target['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def render_markdown(report: dict) -> str:
    machine, server, config = report["machine"], report["server"], report["config"]
    sizes = [Size(**size) for size in config["sizes"]]
    lines = [
        f"# The catalogue at scale ({report['generated_at']})",
        "",
        f"Machine: {machine['cpu_count']} cores ({machine['platform']}, Python "
        f"{machine['python']}); the load generator (wrk, {config['wrk_threads']} threads, "
        f"{config['connections']} connections) and PostgreSQL share it. gunicorn: "
        f"{server['workers']} `{server['worker_class']}` workers x {server['threads']} "
        f"thread(s), {server['config']}. {report['settings']}.",
        "",
        f"Each measurement lasts {config['duration_seconds']} s, {config['repeats']} round(s) "
        "(medians); every path sits between two ceilings (`GET /healthz`, same connections) "
        "and its *ratio* is its requests/s over their mean. gunicorn restarts for each "
        "variant, with an empty Redis database; 2 s of warm-up per path first (for `cached`, "
        "that fills the cache). Whole run: "
        f"{report.get('total_seconds', 0) / 60:.1f} min.",
        "",
        "## Data",
        "",
        "| | " + " | ".join(size.label for size in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    data = [report["data"].get(size.key, {}) for size in sizes]

    def row(label: str, values: list) -> None:
        lines.append(f"| {label} | " + " | ".join(str(value) for value in values) + " |")

    row("events (upcoming)", [f"{d.get('events', 0):,}" for d in data])
    row("facilitators / users", [f"{d.get('facilitators')} / {d.get('users', 0):,}" for d in data])
    row("bookings", [f"{d.get('bookings', 0):,}" for d in data])
    states = sorted({state for d in data for state in d.get("bookings_by_state", {})})
    for state in states:
        row(f"&nbsp; {state}", [f"{d.get('bookings_by_state', {}).get(state, 0):,}" for d in data])
    row("events sold out (`available=false`)", [f"{d.get('events_sold_out', 0):,}" for d in data])
    row("events free", [f"{d.get('events_free', 0):,}" for d in data])
    row(
        'events with "breath" in title or description',
        [f"{d.get('events_containing_breath', 0):,}" for d in data],
    )
    row(
        "seed seconds (whole; phases)",
        [
            f"{d.get('seed_seconds_total')}; "
            + ", ".join(f"{k} {v}" for k, v in d.get("seed_phases_seconds", {}).items())
            for d in data
        ],
    )
    row(
        "EXPLAIN / measuring seconds",
        [
            f"{d.get('explain_seconds', '-')} / "
            + ", ".join(
                f"{variant} {d[f'measure_{variant}_seconds']}"
                for variant in config["variants"]
                if f"measure_{variant}_seconds" in d
            )
            for d in data
        ],
    )
    lines += ["", "## Results", "", render_results(report)]
    if report["explain"]:
        lines += render_explains(report["explain"])
    lines += [
        "",
        "## Every measurement",
        "",
        "| Size | Variant | Round | Path | Ceiling before / after req/s | req/s | p50 ms | p99 ms "
        "| Ratio | CPU ratio | CPU ms/req | Machine busy % | Status codes |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        result = run["result"]
        lines.append(
            f"| {run['size']} | {run['variant']} | {run['repeat']} | {run['scenario']} "
            f"| {run['ceiling']['rps']:.0f} / {run['ceiling_after']['rps']:.0f} "
            f"| {result['rps']:.1f} | {result['p50_ms']} | {result['p99_ms']} "
            f"| {run['ratio']:.1%} | {run['cpu_ratio']:.1%} "
            f"| {result['cpu_ms_per_request']['total']:.2f} | {result['cpu_busy_pct']} "
            f"| {', '.join(f'{k}: {v}' for k, v in result['statuses'].items())} |"
        )
    lines.append(
        f"\nLoad average (1, 5, 15 min) at the start: {machine.get('load_average_at_start')}, "
        f"at the end: {machine['load_average_at_end']}; a 1-minute value well above 0 at the "
        "start means other work shared the machine (bench/README.md, *Reading the numbers*)."
    )
    return "\n".join(lines) + "\n"


def the_apps_plan(query: dict) -> tuple[str, dict]:
    """Which plan the app ran this SELECT with once prepared: ("generic", plan) when
    PostgreSQL switched to the generic plan, else ("as sent", plan)."""
    runs = query.get("prepared_plans") or {}
    if runs.get("generic_plans") and "generic" in query:
        return "generic", query["generic"]
    return "as sent", query["custom"]


def render_explains(explains: dict) -> list[str]:
    lines = [
        "## Query plans",
        "",
        "`EXPLAIN (ANALYZE, BUFFERS)` of every SELECT each path runs, taken in-process "
        "(bench/explain_catalogue.py: Django's test client, cache off) right after seeding, "
        "before any load, after 11 requests of the path on the same connection. *As sent*: "
        "the statement with its parameters bound, planned for these values; *generic*: the "
        "same statement prepared and run with `plan_cache_mode = force_generic_plan`. psycopg "
        "prepares a statement at its 5th run on a connection, and PostgreSQL runs a prepared "
        "statement's first 5 executions with custom plans, then keeps the generic one if it "
        "looks no costlier. *Generic/custom runs*: what PostgreSQL did with each SELECT on "
        "that connection (`pg_prepared_statements`; a statement shared by several paths "
        "counts all of their runs); a SELECT with generic runs is served by its generic plan "
        "under load. *Costliest node*: in the plan the app runs, the node with the most time "
        "of its own (its time over all loops less its children's).",
        "",
        "| Size | Path | Status, count | In-process ms | SQL ms as sent (generic) "
        "| Generic/custom runs per SELECT | Costliest node |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for size_key, entries in explains.items():
        for entry in entries:
            queries = entry["queries"]
            custom = sum(query["custom"]["execution_ms"] for query in queries)
            generic = sum(
                query.get("generic", query["custom"])["execution_ms"] for query in queries
            )
            runs = ", ".join(
                f"{plans['generic_plans']}/{plans['custom_plans']}"
                if (plans := query.get("prepared_plans"))
                else "-"
                for query in queries
            )
            nodes = [
                (node["self_ms"], node["node"], number, kind)
                for number, query in enumerate(queries, 1)
                for kind, plan in [the_apps_plan(query)]
                for node in plan["costliest_nodes"][:1]
            ]
            top = max(nodes, default=None)
            lines.append(
                f"| {size_key} | `{entry['path']}` | {entry['status']}"
                + (f", {entry['count']:,}" if entry.get("count") is not None else "")
                + f" | {entry['in_process_ms_median']} | {custom:.1f} ({generic:.1f}) "
                f"| {runs} | "
                + (f"SELECT {top[2]} ({top[3]}): {top[1]}, {top[0]:.1f} ms" if top else "")
                + " |"
            )
    lines.append("")
    for size_key, entries in explains.items():
        for entry in entries:
            lines += [
                "<details>",
                f"<summary>{size_key}: <code>{entry['path']}</code> ({len(entry['queries'])} "
                "SELECTs)</summary>",
                "",
            ]
            for number, query in enumerate(entry["queries"], 1):
                plans = query.get("prepared_plans")
                lines += [
                    f"SELECT {number}"
                    + (
                        f" (prepared: {plans['generic_plans']} generic, "
                        f"{plans['custom_plans']} custom runs)"
                        if plans
                        else ""
                    )
                    + ":",
                    "",
                    "```sql",
                    query["sql"],
                    "```",
                    "",
                    f"As sent ({query['custom']['execution_ms']} ms):",
                    "",
                    "```",
                    query["custom"]["text"],
                    "```",
                    "",
                ]
                if "generic" in query:
                    lines += [
                        f"Generic plan ({query['generic']['execution_ms']} ms):",
                        "",
                        "```",
                        query["generic"]["text"],
                        "```",
                        "",
                    ]
            lines += ["</details>", ""]
    return lines
