"""Project-level checks that run manage.py in a fresh process, with a given environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "False",
    "SECRET_KEY": "k9!v2Lr@8qZ#x4Tn6Wb$1Hs^3Jd&5Fg*7Mp(0Ye)Rc-Ua_Io+Pl=Ek]Nw[Vz{Qh}",
    "JWT_SECRET_KEY": "another-long-random-value-for-signing-jwts-0123456789",
    "ALLOWED_HOSTS": "api.ahoum.example",
    "READ_DOT_ENV": "false",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only the given environment: drop what the test settings put in this process's.
    inherited = ("DJANGO_", "DEBUG", "SECRET_KEY", "JWT_SECRET_KEY", "SECURE_", "READ_DOT_ENV")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    clean["DJANGO_SETTINGS_MODULE"] = "ahoum.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_env():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("secret", ["", "supersecretkey", "change-me"])
def test_production_refuses_empty_or_example_secret_key(secret):
    result = manage("check", env=PRODUCTION_ENV | {"SECRET_KEY": secret})

    assert result.returncode != 0
    assert "SECRET_KEY is empty or the example value" in result.stderr


def test_production_refuses_short_jwt_secret():
    result = manage("check", env=PRODUCTION_ENV | {"JWT_SECRET_KEY": "short"})

    assert result.returncode != 0
    assert "JWT_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("STRIPE_TIMEOUT_SECONDS", "0", "STRIPE_TIMEOUT_SECONDS must be between 0 and 600"),
    ],
)
def test_settings_refuse_periods_out_of_range(name, value, message):
    result = manage("check", env=PRODUCTION_ENV | {name: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_production_refuses_a_catalogue_cache_that_processes_do_not_share():
    result = manage("check", env=PRODUCTION_ENV | {"CATALOGUE_CACHE_SECONDS": "60"})

    assert result.returncode != 0
    assert "CATALOGUE_CACHE_SECONDS needs REDIS_URL" in result.stderr
    shared = PRODUCTION_ENV | {"CATALOGUE_CACHE_SECONDS": "60", "REDIS_URL": "redis://127.0.0.1"}
    assert manage("check", env=shared).returncode == 0


def test_openapi_schema_generates_and_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    result = manage(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(out), env=PRODUCTION_ENV
    )

    assert result.returncode == 0, result.stderr
    schema = out.read_text()
    assert "/auth/login" in schema
    assert "jwtAuth" in schema


def test_no_missing_migrations():
    result = manage("makemigrations", "--check", "--dry-run", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
