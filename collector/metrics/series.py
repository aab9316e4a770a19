"""Label-value series with a cardinality limit and expiry, exposed as a prometheus_client collector.

prometheus_client's own Counter/Histogram keep every label set forever and cannot say whether a label
set is new, so a flow with a fresh pod name per request would grow memory without bound. Here a metric
family holds at most `limit` series; a flow that would create one more is counted in
`flowscope_metrics_cardinality_refused_total{metric}` instead. Series untouched for `ttl` seconds and
series of a deleted pod are removed, so the exposition does not accumulate the dead.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# prometheus_client's (and Hubble's Go client's) default buckets.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Counter:
    __slots__ = ("value", "touched")

    def __init__(self, now: float) -> None:
        self.value = 0.0
        self.touched = now


class _Histogram:
    __slots__ = ("counts", "total", "touched")

    def __init__(self, now: float, nbuckets: int) -> None:
        self.counts = [0] * (nbuckets + 1)  # last slot: above the largest bound (+Inf)
        self.total = 0.0
        self.touched = now


class SeriesVec:
    """One counter or histogram family: label values (a tuple, in `labelnames` order) -> series."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str], limit: int,
                 clock: Callable[[], float], buckets: tuple[float, ...] | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.limit = limit
        self.buckets = buckets
        self.refused = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], _Counter | _Histogram] = {}

    @property
    def is_histogram(self) -> bool:
        return self.buckets is not None

    def _get(self, values: tuple[str, ...], now: float):
        series = self._series.get(values)
        if series is None:
            if len(self._series) >= self.limit:
                self.refused += 1
                return None
            series = _Histogram(now, len(self.buckets)) if self.buckets is not None else _Counter(now)
            self._series[values] = series
        return series

    def inc(self, values: tuple[str, ...], amount: float = 1.0) -> None:
        now = self._clock()
        with self._lock:
            series = self._get(values, now)
            if series is not None:
                series.value += amount
                series.touched = now

    def observe(self, values: tuple[str, ...], value: float) -> None:
        now = self._clock()
        with self._lock:
            series = self._get(values, now)
            if series is not None:
                series.counts[bisect.bisect_left(self.buckets, value)] += 1
                series.total += value
                series.touched = now

    def __len__(self) -> int:
        return len(self._series)

    def delete_matching(self, match: dict[str, str]) -> int:
        """Remove every series whose labels include all of `match` (Prometheus' DeletePartialMatch)."""
        if not set(match) <= set(self.labelnames):
            return 0
        wanted = [(self.labelnames.index(k), v) for k, v in match.items()]
        with self._lock:
            doomed = [key for key in self._series if all(key[i] == v for i, v in wanted)]
            for key in doomed:
                del self._series[key]
        return len(doomed)

    def expire(self, older_than: float) -> int:
        with self._lock:
            doomed = [key for key, s in self._series.items() if s.touched < older_than]
            for key in doomed:
                del self._series[key]
        return len(doomed)

    def family(self):
        with self._lock:
            items = [(key, (list(s.counts), s.total) if self.buckets is not None else s.value)
                     for key, s in self._series.items()]
        if self.buckets is None:
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for key, value in items:
                family.add_metric(key, value)
            return family
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [_fmt(b) for b in self.buckets] + ["+Inf"]
        for key, (counts, total) in items:
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts):
                running += count
                cumulative.append((bound, running))
            family.add_metric(key, cumulative, sum_value=total)
        return family


def _fmt(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class SeriesCollector(Collector):
    """Exposes a set of SeriesVecs plus their bookkeeping; expires stale series on each scrape."""

    def __init__(self, vecs: list[SeriesVec], ttl: float | None, clock: Callable[[], float]) -> None:
        self.vecs = vecs
        self.ttl = ttl
        self._clock = clock

    def expire(self) -> int:
        if self.ttl is None:
            return 0
        cutoff = self._clock() - self.ttl
        return sum(vec.expire(cutoff) for vec in self.vecs)

    def describe(self) -> Iterator:
        for vec in self.vecs:
            family_type = HistogramMetricFamily if vec.is_histogram else CounterMetricFamily
            yield family_type(vec.name, vec.documentation, labels=vec.labelnames)
        yield from self._bookkeeping(empty=True)

    def collect(self) -> Iterator:
        self.expire()
        for vec in self.vecs:
            yield vec.family()
        yield from self._bookkeeping(empty=False)

    def _bookkeeping(self, empty: bool) -> Iterator:
        refused = CounterMetricFamily(
            "flowscope_metrics_cardinality_refused_total",
            "Flows not counted because their metric already had its maximum number of series",
            labels=["metric"])
        series = GaugeMetricFamily("flowscope_metrics_series", "Series currently held per metric",
                                   labels=["metric"])
        if not empty:
            for vec in self.vecs:
                refused.add_metric([vec.name], vec.refused)
                series.add_metric([vec.name], len(vec))
        yield refused
        yield series
