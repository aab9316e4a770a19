"""The Grafana generator (deploy/grafana/generate.py is a script, not a package) and Grafana's macro
expansion, as the tests need them."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

GENERATOR = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "generate.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("flowscope_grafana_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


generate = load_generator()
PROM_QUERIES = [q for d in generate.dashboards() for q in d.prometheus]
CLICKHOUSE_QUERIES = [q for d in generate.dashboards() for q in d.clickhouse]
API_QUERIES = [q for d in generate.dashboards() for q in d.api]


def expand_promql(expr: str, rate_interval: str = "5s") -> str:
    """Grafana's $__rate_interval for a 1 s scrape interval (what the test Prometheus uses) and the
    dashboards' variables at their default, All (allValue ".*")."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$namespace", ".*")
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unexpanded variable(s) {leftover} in {expr}"
    return expr


def expand_clickhouse(sql: str, database: str, from_s: int, to_s: int, interval_s: int = 60) -> str:
    """The grafana-clickhouse-datasource (v4) macros and Grafana's template variables, as Grafana
    expands them before the query reaches ClickHouse."""
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({from_s}) AND {m[1]} <= toDateTime({to_s})", sql)
    replacements = {"${database}": database, "$__fromTime": f"toDateTime({from_s})",
                    "$__toTime": f"toDateTime({to_s})", "$__interval_s": str(interval_s),
                    "$__interval_ms": str(interval_s * 1000)}
    for macro, value in replacements.items():
        sql = sql.replace(macro, value)
    leftover = re.findall(r"\$\{?\w+", sql)
    assert not leftover, f"unexpanded macro(s) {leftover} in {sql}"
    return sql
