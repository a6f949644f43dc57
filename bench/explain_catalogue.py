"""EXPLAIN (ANALYZE, BUFFERS) of the SQL the app really runs for each path, in-process.

Run by `bench/run.py --scale` on the database it has just seeded, with the server's
environment and the catalogue cache off (CATALOGUE_CACHE_SECONDS=0). Each path goes through
Django's whole stack with the test client; every SELECT it runs is captured twice over: its
text with the values in it (`CaptureQueriesContext`), and the statement and parameters as
the app sent them (`connection.execute_wrapper`). Each SELECT is then explained as sent, so
PostgreSQL plans it for these values (as it does a connection's first runs of a statement),
and, when the app binds parameters on the server (DATABASE_PREPARED_STATEMENTS, the default),
once more as a generic plan (PREPARE, `plan_cache_mode = force_generic_plan`, EXPLAIN
EXECUTE): the plan a prepared statement may switch to after five runs (psycopg prepares a
statement at its fifth run on a connection).

    .venv/bin/python bench/explain_catalogue.py --spec paths.json --out explain.json

`paths.json`: `[{"name": ..., "path": "/events?...", "token": ""}, ...]`.
"""

import argparse
import itertools
import json
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ahoum.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

# In-process time of the path: the median of these, after one warm-up. Enough runs on one
# connection for psycopg to prepare each statement (its 5th run) and for PostgreSQL to pick
# its plan for good (a prepared statement's first 5 runs get custom plans, then it compares).
TIMED_REQUESTS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if settings.CATALOGUE_CACHE_SECONDS:
        sys.exit("explain_catalogue.py: run it with CATALOGUE_CACHE_SECONDS=0 (pages, not SQL)")
    logging.getLogger("ahoum.request").setLevel(logging.WARNING)  # one line per request
    client = Client(HTTP_HOST=settings.ALLOWED_HOSTS[0])
    generic = bool(connection.settings_dict["OPTIONS"].get("server_side_binding"))
    explained = []
    for spec in json.loads(args.spec.read_text()):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {spec['token']}"} if spec.get("token") else {}
        client.get(spec["path"], **headers)  # warm: imports, connection, PostgreSQL's buffers
        wall = []
        for _ in range(TIMED_REQUESTS):
            started = time.perf_counter()
            client.get(spec["path"], **headers)
            wall.append(1000 * (time.perf_counter() - started))
        sent: list[tuple[str, object]] = []

        def capture(execute, sql, params, many, context, sent=sent):
            sent.append((sql, params))
            return execute(sql, params, many, context)

        with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(capture):
            response = client.get(spec["path"], **headers)
        plans = prepared_plans()
        body = (
            response.json()
            if response.get("Content-Type", "").startswith("application/json")
            else {}
        )
        entry = {
            "name": spec["name"],
            "path": spec["path"],
            "status": response.status_code,
            "count": body.get("count") if isinstance(body, dict) else None,
            "in_process_ms_median": round(statistics.median(wall), 2),
            "queries": [],
        }
        for captured, (sql, params) in zip(queries.captured_queries, sent, strict=True):
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            query = {
                "sql": captured["sql"],
                # How often PostgreSQL ran this prepared statement with a generic plan and with
                # a custom one, in the 12 requests above (None: not prepared).
                "prepared_plans": plans.get(numbered(sql)),
                "custom": explain(sql, params, generic=False),
            }
            if generic and params:
                query["generic"] = explain(sql, params, generic=True)
            entry["queries"].append(query)
        explained.append(entry)
        sql_ms = sum(query["custom"]["execution_ms"] for query in entry["queries"])
        print(
            f"explain {spec['name']}: {response.status_code}, {len(entry['queries'])} SELECTs, "
            f"{sql_ms:.1f} ms in PostgreSQL, {entry['in_process_ms_median']} ms in-process",
            flush=True,
        )
    args.out.write_text(json.dumps(explained, indent=2) + "\n")


def explain(sql: str, params, *, generic: bool) -> dict:
    """The plan of one statement: text, timings and costliest nodes.

    As sent: EXPLAIN of the statement with its parameters bound on the server, as the app
    runs it (PostgreSQL plans an EXPLAIN for the values it is given). Generic: the statement
    PREPAREd with $n placeholders and EXPLAIN EXECUTEd with `force_generic_plan` (a bound
    EXPLAIN always gets a plan for its values, whatever plan_cache_mode says).
    """
    with connection.cursor() as cursor:
        if not generic:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
            document = cursor.fetchone()[0]
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            text = "\n".join(row[0] for row in cursor.fetchall())
        else:
            cursor.execute(f"PREPARE bench_explain AS {numbered(sql)}")
            try:
                cursor.execute("SET plan_cache_mode = force_generic_plan")
                values = ", ".join(connection.ops.compose_sql("%s", [value]) for value in params)
                run = f"EXECUTE bench_explain({values})"
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {run}")
                document = cursor.fetchone()[0]
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {run}")
                text = "\n".join(row[0] for row in cursor.fetchall())
            finally:
                cursor.execute("RESET plan_cache_mode")
                cursor.execute("DEALLOCATE bench_explain")
    if isinstance(document, str):
        document = json.loads(document)
    plan = document[0]
    root = plan["Plan"]
    nodes = sorted(walk(root), key=lambda node: node["self_ms"], reverse=True)
    return {
        "planning_ms": round(plan.get("Planning Time", 0), 3),
        "execution_ms": round(plan.get("Execution Time", 0), 3),
        "rows": root.get("Actual Rows"),
        "shared_blocks_hit": root.get("Shared Hit Blocks", 0),
        "shared_blocks_read": root.get("Shared Read Blocks", 0),
        "costliest_nodes": nodes[:3],
        "text": text,
    }


def prepared_plans() -> dict[str, dict[str, int]]:
    """This connection's prepared statements (psycopg's), with the plans each was run with."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {
            statement: {"generic_plans": generic, "custom_plans": custom}
            for statement, generic, custom in cursor.fetchall()
        }


def numbered(sql: str) -> str:
    """Django's `%s` placeholders as PostgreSQL's `$1, $2, ...` (`%%` is a literal `%`)."""
    count = itertools.count(1)
    return re.sub(r"%%|%s", lambda match: "%" if match[0] == "%%" else f"${next(count)}", sql)


def walk(node: dict):
    """Every node with its own time (its total over all loops less its children's)."""
    loops = node.get("Actual Loops", 1) or 0
    children = node.get("Plans", [])
    own = node.get("Actual Total Time", 0) * loops - sum(
        child.get("Actual Total Time", 0) * (child.get("Actual Loops", 1) or 0)
        for child in children
    )
    yield {"node": describe(node), "self_ms": round(max(own, 0.0), 3), "loops": loops}
    for child in children:
        yield from walk(child)


def describe(node: dict) -> str:
    words = [node["Node Type"]]
    if node.get("Parent Relationship") in ("SubPlan", "InitPlan"):
        words.insert(0, f"({node.get('Subplan Name', node['Parent Relationship'])})")
    if "Index Name" in node:
        words.append(f"using {node['Index Name']}")
    if "Relation Name" in node:
        words.append(f"on {node['Relation Name']}")
    words.append(f"rows={node.get('Actual Rows')}")
    if node.get("Rows Removed by Filter"):
        words.append(f"removed by filter={node['Rows Removed by Filter']}")
    if "Sort Method" in node:
        words.append(f"sort: {node['Sort Method']} {node.get('Sort Space Used', '')} kB")
    return " ".join(str(word) for word in words)


if __name__ == "__main__":
    main()
