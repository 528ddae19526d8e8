"""Retries with exponential backoff and jitter for transient backend failures.

Backends classify each failed attempt: :class:`TransientError` (timeout, connection error, HTTP 408,
429, 5xx, a CLI that timed out) is retried; :class:`PermanentError` (other 4xx, a malformed or
incomplete response) is not, because repeating the same request cannot fix it. After the last retry
the failure becomes an :class:`~afscope.errors.BackendError`.

Sleeping goes through ``RetryPolicy.sleep`` and jitter through a seeded RNG, so tests inject a
recording sleep and run in milliseconds.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

from afscope.errors import BackendError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TransientError(Exception):
    """A failed attempt that may succeed if repeated (``retry_after`` in seconds, if the server said)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failed attempt that repeating cannot fix (bad request, auth, malformed response)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class RetryPolicy:
    """How often and how long to wait between attempts.

    The n-th retry waits ``min(max_delay_s, base_delay_s * 2**n)`` scaled by a jitter factor drawn
    uniformly from [0.5, 1] ("equal jitter": spreads clients apart without ever retrying at once).
    A server's ``Retry-After`` replaces the computed delay (capped at ``max_retry_after_s``).
    """

    max_retries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 600.0
    seed: int | None = 0
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()  # the RNG is shared by the worker threads of one backend

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        nominal = min(self.max_delay_s, self.base_delay_s * (2.0**retry))
        with self._lock:
            u = self._rng.random()
        return nominal * (0.5 + 0.5 * u)


def call_with_retries(fn: Callable[[], T], policy: RetryPolicy, *, what: str) -> T:
    """Call ``fn`` until it succeeds, retrying :class:`TransientError` up to ``policy.max_retries``.

    ``what`` names the backend, model and operation in log lines and in the final
    :class:`BackendError`; it must not contain secrets.
    """
    attempts = policy.max_retries + 1
    for retry in range(attempts):
        try:
            return fn()
        except PermanentError as e:
            raise BackendError(f"{what}: {e}") from e
        except TransientError as e:
            if retry == attempts - 1:
                raise BackendError(f"{what}: failed after {attempts} attempt(s); last error: {e}") from e
            wait = policy.delay(retry, e.retry_after)
            logger.warning("%s: %s; retry %d/%d in %.2f s", what, e, retry + 1, policy.max_retries, wait)
            policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max((when - now_dt).total_seconds(), 0.0)
