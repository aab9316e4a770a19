"""L7 queries from the per-minute aggregates: HTTP RED per server workload, DNS per client workload."""

from __future__ import annotations

from common.timeparse import TimeLike
from storage.backend import quote
from storage.core import StoreCore
from storage.errors import StorageError
from storage.queries.window import NS, minutes, quantiles
from storage.results import DnsPoint, DnsQuery, DnsSummary, RedPoint
from storage.schema.ddl import QUANTILES_MERGE


class L7Queries(StoreCore):
    @staticmethod
    def _workload_sql(namespace: str | None, workload: str | None) -> str:
        sql = ""
        if namespace is not None:
            sql += f" AND namespace = {quote(namespace)}"
        if workload is not None:
            sql += f" AND workload = {quote(workload)}"
        return sql

    @staticmethod
    def _step(step_s: int) -> int:
        if not isinstance(step_s, int) or step_s < 60 or step_s % 60:
            raise StorageError(f"step {step_s!r}: expected a whole number of minutes in seconds (60, 300...)")
        return step_s

    def http_red(self, since: TimeLike, until: TimeLike, step_s: int = 60, namespace: str | None = None,
                 workload: str | None = None) -> list[RedPoint]:
        """HTTP rate, errors and duration per server workload, one point per step (from responses)."""
        step = self._step(step_s)
        _, _, window = minutes(since, until)
        rows = self.backend.rows(
            f"SELECT intDiv(toUInt32(minute), {step}) * {step} AS t, namespace, workload, "
            "sumMerge(requests), sumMergeIf(requests, code >= 500), "
            "sumMergeIf(requests, code >= 400 AND code < 500), "
            f"{QUANTILES_MERGE}(latency) FROM {self.layout.table('http_1m')} "
            f"WHERE {window}{self._workload_sql(namespace, workload)} "
            "GROUP BY t, namespace, workload ORDER BY t, namespace, workload")
        out = []
        for t, ns, wl, requests, errors, client_errors, latency in rows:
            p50, p95, p99 = quantiles(latency)
            out.append(RedPoint(t * NS, ns, wl, requests, requests / step, errors, client_errors,
                                errors / requests if requests else 0.0, p50, p95, p99))
        return out

    def dns_summary(self, since: TimeLike, until: TimeLike, step_s: int = 60,
                    namespace: str | None = None, workload: str | None = None,
                    limit: int = 10) -> DnsSummary:
        """DNS per client workload per step, and the top queries (by count) of the window."""
        step = self._step(step_s)
        _, _, window = minutes(since, until)
        where = f"{window}{self._workload_sql(namespace, workload)}"
        table = self.layout.table("dns_1m")
        rows = self.backend.rows(
            f"SELECT intDiv(toUInt32(minute), {step}) * {step} AS t, namespace, workload, "
            "sumMerge(requests), sumMerge(responses), sumMergeIf(responses, rcode = 3), "
            f"sumMergeIf(responses, rcode != 0), {QUANTILES_MERGE}(latency) "
            f"FROM {table} WHERE {where} GROUP BY t, namespace, workload ORDER BY t, namespace, workload")
        series = []
        for t, ns, wl, queries, responses, nx, errors, latency in rows:
            p50, p95, p99 = quantiles(latency)
            series.append(DnsPoint(t * NS, ns, wl, queries, responses, nx, errors, p50, p95, p99))
        top = self.backend.rows(
            "SELECT query, greatest(sumMerge(requests), sumMerge(responses)) AS n, "
            "sumMergeIf(responses, rcode = 3), sumMergeIf(responses, rcode != 0) "
            f"FROM {table} WHERE {where} GROUP BY query ORDER BY n DESC, query LIMIT {int(limit)}")
        return DnsSummary(series, [DnsQuery(q, n, nx, e) for q, n, nx, e in top])
