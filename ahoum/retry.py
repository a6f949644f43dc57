"""How long to wait before trying an outside service again (refunds, CRM deliveries, emails)."""

import random


def backoff_seconds(attempts: int, *, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff after `attempts` failed tries, capped, with ±20% jitter.

    The jitter spreads retries of many items that failed together (say, during an outage) so
    they do not all come back at the same instant.
    """
    delay = min(base_seconds * 2 ** min(max(attempts - 1, 0), 30), max_seconds)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311  (not for security)
