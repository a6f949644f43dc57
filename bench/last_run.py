"""Django set up on the last benchmark run's database, for the in-process tools.

`bench/profile.py` and `bench/ab.py` import this first: it loads the environment
`bench/run.py` saved (`bench/.work/env.json`) and calls `django.setup()`.
"""

import json
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
RESULTS = BENCH / "results"

saved = WORK / "env.json"
if not saved.is_file():
    sys.exit("No seeded data yet: run the benchmark once first (bench/run.py).")
os.environ.update(json.loads(saved.read_text()))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ahoum.settings")
sys.path.insert(0, str(REPO))

import django  # noqa: E402

django.setup()
