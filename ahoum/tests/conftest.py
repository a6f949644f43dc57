"""Fixtures of other apps' tests that the project-level tests use too."""

from bookings.tests.conftest import stripe_on, stripe_webhooks  # noqa: F401 (fixtures)
