"""JSON over HTTP with httpx: timeouts, retries with backoff, one-line errors.

Generation servers fail in two ways that matter: transiently (429 rate limits, 5xx while a server is
busy or restarting), which a retry fixes, and for good (a wrong URL, a missing key, a disabled
endpoint), which only the user can fix. The first is retried with exponential backoff; the second
becomes an :class:`HTTPError` carrying the status and the server's message, for the caller to turn
into an error that names the fix. A server that never answers raises after ``timeout`` seconds.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import httpx

from rlhub.errors import RLHubError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Statuses worth another try: timeouts, rate limits, overloaded or restarting servers."""


class HTTPError(RLHubError):
    """A request failed for good; ``status`` is None when no HTTP answer came (refused, timed out)."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


def api_root(base_url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` all give ``http://host:8000/v1``.

    >>> api_root("http://localhost:8000"), api_root("https://api.example.com/v1/")
    ('http://localhost:8000/v1', 'https://api.example.com/v1')
    """
    root = base_url.rstrip("/")
    return root if root.endswith("/v1") else f"{root}/v1"


def server_message(body: str) -> str:
    """The error message inside an OpenAI-style error body (``{"error": {"message": ...}}``), else the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if data.get("message"):
            return str(data["message"])[:300]
    return body.strip()[:300]


def request_json(
    method: str,
    url: str,
    payload: dict[str, Any] | None = None,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    retries: int = 0,
    backoff: float = 1.0,
) -> Any:
    """Send ``payload`` as JSON and return the decoded answer (a string when the answer is not JSON).

    Args:
        method: ``"GET"`` or ``"POST"``.
        url: The full URL.
        payload: The JSON body (POST).
        timeout: Seconds to wait for the server, per attempt.
        headers: Extra headers (e.g. ``Authorization``).
        retries: Further attempts after a retryable failure (429, 5xx, a refused or timed-out connection).
        backoff: First wait in seconds; it doubles each attempt, capped at 30 s; a ``Retry-After``
            header overrides it.

    Raises:
        HTTPError: A non-retryable status, or the last retryable failure.
    """
    content = json.dumps(payload).encode() if payload is not None else None
    all_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    attempt = 0
    while True:
        wait = min(backoff * 2**attempt, 30.0)
        try:
            response = _client().request(method, url, content=content, headers=all_headers, timeout=timeout)
        except httpx.TimeoutException:
            error = HTTPError(f"{method} {url} did not answer within {timeout:g} s")
        except httpx.TransportError as exc:
            error = HTTPError(f"could not reach {url}: {exc}")
        else:
            text = response.text
            if response.is_success:
                try:
                    return json.loads(text)
                except ValueError:
                    return text
            error = HTTPError(
                f"{method} {url} answered {response.status_code}: {server_message(text)}", response.status_code, text
            )
            if response.status_code not in RETRY_STATUSES:
                raise error
            retry_after = response.headers.get("Retry-After")
            if retry_after and retry_after.replace(".", "", 1).isdigit():
                wait = min(float(retry_after), 60.0)
        if attempt >= retries:
            raise error
        time.sleep(wait)
        attempt += 1


@functools.cache
def _client() -> httpx.Client:
    """One pooled client for the process (httpx clients are thread-safe); redirects followed, as urllib did."""
    return httpx.Client(follow_redirects=True, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
