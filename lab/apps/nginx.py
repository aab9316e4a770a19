"""An nginx configuration for lab namespaces and benchmarks: HTTP/1.1 on one port, h2c on the next, and
an answer of each kind (200, 404, 500). Unprivileged: every path nginx writes is under the given folder.

    conf = nginx_conf(folder, 8080, 8081); run `nginx -c conf -p folder`
"""

from __future__ import annotations

from pathlib import Path

NGINX_CONF = """
worker_processes 1; daemon off; master_process off; error_log {d}/error.log; pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port}; listen 127.0.0.1:{h2port} http2;
    location /ok {{ return 200 "ok\\n"; }}
    location /fail {{ return 500; }}
    location / {{ return 404; }}
  }}
}}
"""


def nginx_conf(folder: Path, port: int, h2port: int) -> Path:
    """Write nginx.conf into folder and return its path."""
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=folder, port=port, h2port=h2port))
    return conf
