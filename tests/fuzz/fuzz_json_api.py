"""Fuzz the JSON API's query parsing (ui/json_api.py): any query string gives the parameters every
endpoint reads, or a BadParameter/FilterError (HTTP 400) — never another exception (HTTP 500)."""

import atheris

with atheris.instrument_imports(include=["ui.json_api", "common.filters", "common.timeparse", "common.patterns"]):
    from common.errors import UserError
    from ui.json_api import ROUTES, Params, flow_filters, step

from tests.common.filters.sample import BASE_NS
from tests.fuzz.engine import run

EVERY_PARAMETER = tuple(sorted({name for _handler, allowed in ROUTES.values() for name in allowed}))
SEEDS = [b"namespace=shop&namespace=data&pod=web&label=app%3Dweb,tier!=db&verdict=dropped&protocol=http"
         b"&since=1h30m&until=2023-11-14T22:13:20Z&limit=100&first=true&step=120&by=bytes&format=hubble",
         b"since=1700000000000&until=now&limit=0&step=61&label=app+in+(a,b)&pod=a/b&namespace=x"]


def one_input(data: bytes) -> None:
    query = data.decode("latin-1")   # http.server hands the path over decoded as latin-1
    try:
        params = Params(query, EVERY_PARAMETER, BASE_NS)
        flow_filters(params)
        params.window()
        params.int("limit", 100)
        params.bool("first")
        step(params)
        params.choice("by", ("bytes", "flows"), "bytes")
        params.choice("format", ("table", "hubble"), "table")
        params.time("since", None)
    except UserError:
        return


def main() -> None:
    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
