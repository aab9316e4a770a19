"""The frame of the UI: the Dash app, its pages and navigation, and the HTTP server.

`create_app(store)` builds a dash.Dash over a FlowStore; each module in ui/pages registers its page,
layout and callbacks through `register(app, data)`. `start(store, address)` serves it from a thread
(what `flowscope up` uses), `serve(store, address)` serves until interrupted (`flowscope ui`).
"""

from __future__ import annotations

import importlib.util
import logging

import dash
from dash import Input, Output, dcc, html

from ui import ids
from ui.auth import Auth, check_address, install, parse_address
from ui.data import UIData
from ui.pages import PageOptions
from ui.serving import HTTPServer, Limits, TLSFiles, serve as serve_wsgi

log = logging.getLogger(__name__)
HEALTH_PATH = "/healthz"


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


BANNER = {"background": "#b71c1c", "color": "#ffffff", "padding": "8px 16px", "fontSize": "14px"}


def _store_banner(data: UIData, app: dash.Dash, refresh_s: float) -> list:
    """A banner over every page while the store's queries fail: the panels then show what they had, and
    without it an operator could take a stale map for a quiet cluster."""
    @app.callback(Output(ids.STORE_BANNER, "children"), Output(ids.STORE_BANNER, "style"),
                  Input(ids.STORE_TICK, "n_intervals"))
    def show(_tick):
        problem = data.store_problem
        if not problem:
            return "", {"display": "none"}
        return (f"The flow store is not answering: {problem}. The views show the last data they got; "
                "flowscope keeps trying."), BANNER

    return [html.Div(id=ids.STORE_BANNER, role="alert", style={"display": "none"}),
            dcc.Interval(id=ids.STORE_TICK, interval=int(refresh_s * 1000))]


def create_app(store, *, auth: Auth | None = None, secure_cookie: bool = False, refresh_s: float = 5.0, ttl_s: float = 3.0,
               with_policy: bool | None = None, pin_dir: str = PageOptions.pin_dir) -> dash.Dash:
    """The UI over `store` (a storage.FlowStore). Read-only: it only calls the store's query methods.
    `secure_cookie`: the session cookie is only sent over HTTPS (set when serving TLS).
    `pin_dir`: the datapath pin dir whose applied policies the policy page diffs against."""
    app = dash.Dash(__name__, use_pages=True, pages_folder="", title="flowscope", update_title=None,
                    suppress_callback_exceptions=True)
    data = UIData(store, ttl_s=ttl_s)
    modules = page_modules(with_policy)
    for module in modules:
        module.register(app, data, PageOptions(refresh_s=refresh_s, pin_dir=pin_dir))
    app.layout = html.Div([_navigation(modules), *_store_banner(data, app, refresh_s), dash.page_container],
                          style={"fontFamily": "sans-serif", "margin": 0})
    # For Kubernetes probes, which carry no credentials: it answers "ok" and shows nothing else.
    app.server.add_url_rule(HEALTH_PATH, "healthz", lambda: ("ok\n", 200, {"Content-Type": "text/plain"}))
    if auth is not None:
        install(app.server, auth, secure_cookie=secure_cookie, open_paths=(HEALTH_PATH,))
    return app


UIServer = HTTPServer
# Dash posts each callback's inputs and state as JSON; the flows table's rows can be several MB.
UI_LIMITS = Limits(max_request_body_size=16 << 20)


def start(store, address: str = "127.0.0.1:8050", *, auth: Auth | None = None, insecure: bool = False,
          tls: TLSFiles | None = None, flag: str = "--address", **app_options) -> HTTPServer:
    """Serves the UI from a daemon thread (port 0 picks a free port) with waitress (ui.serving), over
    HTTPS with `tls`. Refuses a non-loopback address without `auth` unless `insecure` (raises
    ui.auth.UIConfigError); `flag` names the address option in errors."""
    host, port = parse_address(address, flag)
    check_address(host, auth, insecure, flag=flag)
    app = create_app(store, auth=auth, secure_cookie=tls is not None, **app_options)
    ui = serve_wsgi(app.server, host, port, name="flowscope-ui", flag=flag, tls=tls, limits=UI_LIMITS)
    log.info("UI on %s%s", ui.url, "" if auth else " (no authentication)")
    return ui


def serve(store, address: str = "127.0.0.1:8050", *, auth: Auth | None = None, insecure: bool = False,
          tls: TLSFiles | None = None, **app_options) -> None:
    """Serves the UI until interrupted."""
    ui = start(store, address, auth=auth, insecure=insecure, tls=tls, **app_options)
    try:
        ui.thread.join()
    finally:
        ui.stop()
