"""The frame of the UI: the Dash app, its pages and navigation, and the HTTP server.

`create_app(store)` builds a dash.Dash over a FlowStore; each module in ui/pages registers its page,
layout and callbacks through `register(app, data)`. `start(store, address)` serves it from a thread
(what `flowscope up` uses), `serve(store, address)` serves until interrupted (`flowscope ui`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading

import dash
from dash import dcc, html
from werkzeug.serving import make_server

from ui import ids
from ui.auth import Auth, check_address, parse_address
from ui.data import UIData
from ui.pages import PageOptions

log = logging.getLogger(__name__)


def enforcer_available() -> bool:
    """The policy page needs the enforcer's suggestion API (enforcer.suggest)."""
    try:
        return importlib.util.find_spec("enforcer.suggest") is not None
    except ModuleNotFoundError:
        return False


def page_modules(with_policy: bool | None = None) -> list:
    from ui.pages import service_map
    modules = [service_map]
    if enforcer_available() if with_policy is None else with_policy:
        from ui.pages import policy
        modules.append(policy)
    return modules


def _navigation(modules: list) -> html.Nav:
    links = [dcc.Link(m.NAME, href=m.PATH, id=f"nav-{m.PATH.strip('/') or 'map'}",
                      style={"marginRight": "18px", "color": "#ffffff", "textDecoration": "none"})
             for m in modules]
    return html.Nav([html.Span("flowscope", style={"fontWeight": "bold", "marginRight": "28px"}), *links],
                    id=ids.NAV, style={"background": "#263238", "color": "#ffffff", "padding": "10px 16px",
                                       "fontFamily": "sans-serif"})


def create_app(store, *, auth: Auth | None = None, refresh_s: float = 5.0, ttl_s: float = 3.0,
               with_policy: bool | None = None, pin_dir: str = PageOptions.pin_dir) -> dash.Dash:
    """The UI over `store` (a storage.FlowStore). Read-only: it only calls the store's query methods.
    `pin_dir`: the datapath pin dir whose applied policies the policy page diffs against."""
    app = dash.Dash(__name__, use_pages=True, pages_folder="", title="flowscope", update_title=None,
                    suppress_callback_exceptions=True)
    data = UIData(store, ttl_s=ttl_s)
    modules = page_modules(with_policy)
    for module in modules:
        module.register(app, data, PageOptions(refresh_s=refresh_s, pin_dir=pin_dir))
    app.layout = html.Div([_navigation(modules), dash.page_container],
                          style={"fontFamily": "sans-serif", "margin": 0})
    if auth is not None:
        auth.install(app.server)
    return app


@dataclasses.dataclass
class UIServer:
    """A running UI: `url`, `port`, and `stop()`."""

    host: str
    port: int
    server: object
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


def start(store, address: str = "127.0.0.1:8050", *, auth: Auth | None = None, insecure: bool = False,
          **app_options) -> UIServer:
    """Serves the UI from a daemon thread (port 0 picks a free port). Refuses a non-loopback address
    without `auth` unless `insecure` (raises ui.auth.UIConfigError)."""
    host, port = parse_address(address)
    check_address(host, auth, insecure)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    app = create_app(store, auth=auth, **app_options)
    server = make_server(host, port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="flowscope-ui", daemon=True)
    thread.start()
    ui = UIServer(host=host, port=server.server_port, server=server, thread=thread)
    log.info("UI on %s%s", ui.url, "" if auth else " (no authentication)")
    return ui


def serve(store, address: str = "127.0.0.1:8050", *, auth: Auth | None = None, insecure: bool = False,
          **app_options) -> None:
    """Serves the UI until interrupted."""
    ui = start(store, address, auth=auth, insecure=insecure, **app_options)
    try:
        ui.thread.join()
    finally:
        ui.stop()
