"""An HTTP/2 cleartext server with the `h2` library that accepts the HTTP/1.1 Upgrade to h2c (what
`curl --http2 http://...` asks for) and prior knowledge. Paths: /ok -> 200, anything else -> 404.
Prints READY once listening."""

import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def respond(conn: h2.connection.H2Connection, stream_id: int, path: str) -> None:
    body = b"ok\n" if path == "/ok" else b"not found\n"
    conn.send_headers(stream_id, [(":status", "200" if path == "/ok" else "404"),
                                  ("content-length", str(len(body)))])
    conn.send_data(stream_id, body, end_stream=True)


def serve(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:  # an HTTP/1.1 head, or the HTTP/2 preface (which contains one too)
        chunk = sock.recv(65536)
        if not chunk:
            return
        data += chunk
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    if data.startswith(b"PRI"):
        conn.initiate_connection()
        pending = data
    else:
        head, _, pending = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        conn.initiate_upgrade_connection(headers["http2-settings"].encode())
        respond(conn, 1, path)
    sock.sendall(conn.data_to_send())
    while True:
        if pending:
            for event in conn.receive_data(pending):
                if isinstance(event, h2.events.RequestReceived):
                    respond(conn, event.stream_id, dict(event.headers)[b":path"].decode())
            sock.sendall(conn.data_to_send())
        pending = sock.recv(65536)
        if not pending:
            return


listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("READY", flush=True)
while True:
    client, _ = listener.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
