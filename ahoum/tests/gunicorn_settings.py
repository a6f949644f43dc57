"""Settings of the gunicorn servers tests start: the test settings, with the stalling views."""

from ahoum.test_settings import *  # noqa: F403

ROOT_URLCONF = "ahoum.tests.crash_urls"
