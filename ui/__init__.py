"""flowscope's Dash UI: service map, flows, RED/DNS/drops panels, policy suggestions (port 8050).

    create_app(store, *, auth=None, refresh_s=5.0, ttl_s=3.0, with_policy=None, pin_dir=...) -> dash.Dash
    start(store, address="127.0.0.1:8050", *, auth=None, insecure=False, tls=None, **app_options) -> UIServer
        serves from a daemon thread with waitress (ui/serving.py; HTTPS with tls=TLSFiles(cert, key));
        UIServer.url, .port, .stop(). Port 0 picks a free port.
        Raises UIConfigError for a bad address, or a non-loopback one without auth unless insecure.
    serve(store, address, ...) -> None        the same, until interrupted (`flowscope ui`)
    Auth.parse(token=None, basic="user:pass") -> Auth | None   (shared with the JSON API, ui/json_api.py)
"""

from ui.app import UIServer, create_app, serve, start
from ui.auth import Auth, UIConfigError

__all__ = ["Auth", "UIConfigError", "UIServer", "create_app", "serve", "start"]
