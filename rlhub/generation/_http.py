"""JSON over HTTP with the standard library: timeouts, retries with backoff, one-line errors.

Generation servers fail in two ways that matter: transiently (429 rate limits, 5xx while a server is
busy or restarting), which a retry fixes, and for good (a wrong URL, a missing key, a disabled
endpoint), which only the user can fix. The first is retried with exponential backoff; the second
becomes an :class:`HTTPError` carrying the status and the server's message, for the caller to turn
into an error that names the fix. A server that never answers raises after ``timeout`` seconds.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

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
    data = json.dumps(payload).encode() if payload is not None else None
    all_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    attempt = 0
    while True:
        request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        wait = min(backoff * 2**attempt, 30.0)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode("utf-8", errors="replace")
            try:
                return json.loads(text)
            except ValueError:
                return text
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")
            error = HTTPError(f"{method} {url} answered {exc.code}: {server_message(body)}", exc.code, body)
            if exc.code not in RETRY_STATUSES:
                raise error from None
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            if retry_after and retry_after.replace(".", "", 1).isdigit():
                wait = min(float(retry_after), 60.0)
        except TimeoutError:
            error = HTTPError(f"{method} {url} did not answer within {timeout:g} s")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                error = HTTPError(f"{method} {url} did not answer within {timeout:g} s")
            else:
                error = HTTPError(f"could not reach {url}: {exc.reason}")
        except ConnectionError as exc:
            error = HTTPError(f"could not reach {url}: {exc}")
        if attempt >= retries:
            raise error
        time.sleep(wait)
        attempt += 1
