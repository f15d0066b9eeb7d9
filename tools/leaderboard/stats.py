"""The statistics the leaderboard reports: standard errors of means, and length quantiles."""

from __future__ import annotations

import math
import statistics


def standard_error(values: list[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for fewer than two values.

    >>> round(standard_error([1.0, 0.0, 1.0, 0.0]), 4), standard_error([1.0])
    (0.2887, 0.0)
    """
    if len(values) < 2:
        return 0.0
    return statistics.stdev(values) / math.sqrt(len(values))


def quantiles(values: list[int]) -> dict[str, float]:
    """min, quartiles, 90th percentile, max and mean of lengths.

    >>> quantiles([1, 2, 3, 4, 5])["median"], quantiles([1, 2, 3, 4, 5])["max"]
    (3.0, 5)
    """
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(ordered) - 1)
        low = math.floor(pos)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 1)

    return {
        "min": ordered[0],
        "p25": at(0.25),
        "median": at(0.5),
        "p75": at(0.75),
        "p90": at(0.9),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
    }
