"""Fakes of outside services (Stripe, Google, ...) for tests.

Each fake speaks HTTP on 127.0.0.1 so the real client library talks to it:
``fakes.stripe_api`` (Stripe), ``fakes.google`` (Google OAuth / OpenID Connect).
"""
