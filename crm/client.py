"""One HTTP attempt at a delivery, and what it means for the next one.

No database work here: `crm.notifier.attempt_delivery` claims the attempt before calling
`post()` and records its outcome after, so no row lock is held during the network call.
"""

import email.utils
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

USER_AGENT = "Ahoum-Webhooks/1.0"
# Answers worth trying again later (Standard Webhooks' delivery guidance; 408 Request Timeout
# and 429 Too Many Requests are the receiver asking for it). Any other 4xx, and 3xx (a moved
# endpoint is a configuration error, redirects are not followed), will not improve by retrying.
RETRYABLE_STATUS = {408, 429}
ERROR_SNIPPET_BYTES = 500


@dataclass(frozen=True)
class AttemptOutcome:
    delivered: bool
    retryable: bool
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait


def json_body(payload: dict) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def post(*, url: str, body: bytes, headers: dict[str, str], timeout: float) -> AttemptOutcome:
    """POST `body` to `url` once; a 2xx answer is a delivery, and nothing here raises."""
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,  # read at most a snippet of the answer
        )
    except requests.RequestException as error:
        return AttemptOutcome(delivered=False, retryable=True, error=_describe(error))
    with response:
        code = response.status_code
        if 200 <= code < 300:
            return AttemptOutcome(delivered=True, retryable=False, status_code=code)
        snippet = _snippet(response)
    retryable = code >= 500 or code in RETRYABLE_STATUS
    retry_after = _retry_after(response.headers.get("Retry-After")) if retryable else None
    return AttemptOutcome(
        delivered=False,
        retryable=retryable,
        status_code=code,
        error=f"HTTP {code}: {snippet}".strip(),
        retry_after=retry_after,
    )


def _snippet(response: requests.Response) -> str:
    try:
        raw = next(response.iter_content(ERROR_SNIPPET_BYTES), b"")
    except requests.RequestException:
        return ""
    return raw[:ERROR_SNIPPET_BYTES].decode("utf-8", errors="replace")


def _describe(error: requests.RequestException) -> str:
    kind = "timeout" if isinstance(error, requests.Timeout) else "network error"
    return f"{kind}: {type(error).__name__}: {error}"[:2000]


def _retry_after(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
