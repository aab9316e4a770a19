"""Why a TLS connection to a collector failed. Certificates are loaded and checked (file, expiry, key)
by common.tls for both sides of the relay; what that cannot see is the PEER's certificate,
so a failed handshake is replayed with the standard library's verifier, which says why it refused.
"""

from __future__ import annotations

import socket
import ssl

from common.tls import ClientTLS


def diagnose_handshake(address: str, files: ClientTLS, timeout: float = 3.0) -> str:
    """Why a TLS handshake with `address` fails, in words ("certificate has expired", ...).

    gRPC reports only that the connection failed; Python's ssl module verifies the same way and says
    which check refused the peer. Returns "" when the handshake succeeds.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "localhost"
    context = ssl.create_default_context(cafile=files.ca) if files.ca else ssl.create_default_context()
    if files.cert and files.key:
        context.load_cert_chain(files.cert, files.key)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=files.server_name or host) as tls:
                # TLS 1.3 reports a refused client certificate only on the first read.
                tls.settimeout(0.3)
                try:
                    tls.recv(1)
                except (TimeoutError, socket.timeout):
                    pass
    except ssl.SSLCertVerificationError as err:
        return f"server certificate refused: {err.verify_message}"
    except ssl.SSLError as err:
        reason = err.reason or str(err)
        return f"TLS handshake failed: {reason.lower().replace('_', ' ')}"
    except OSError as err:
        return f"cannot connect: {err.strerror or err}"
    return ""

