"""A TLS server pod for the TLS capture tests: nginx with a self-signed certificate, serving the same
locations over HTTPS (HTTP/1.1 and HTTP/2, port 8443), plaintext HTTP/1.1 (8080) and h2c (8000), so
one client's TLS and plaintext runs can be compared."""

from __future__ import annotations

import subprocess

import pytest

NGINX_CONF = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    server {{
        listen 8443 ssl http2;
        listen 8080;
        listen 8000 http2;
        location /ok {{ return 200 "ok\\n"; }}
        location /created {{ return 201 "made\\n"; }}
        location /teapot {{ return 418 "short and stout\\n"; }}
        location / {{ return 404; }}
    }}
}}
"""


@pytest.fixture
def nginx_tls(tmp_path):
    """The nginx command line for a lab pod (its config and certificate under tmp_path)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=web",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path))
    return f"exec nginx -c {conf}"
