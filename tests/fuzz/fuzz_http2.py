"""Fuzz the HTTP/2 parser (collector/l7/http2.py): frames, HPACK, gRPC, from the preface or joined mid-stream."""

import atheris

with atheris.instrument_imports(include=["collector.l7", "hpack"]):
    import h2.config
    import h2.connection

    from collector.l7.http2 import Http2Parser
    from collector.l7.types import L7Config, L7ParseError, L7Stats

from tests.fuzz.engine import conversation, feed, run

CONFIG = L7Config(max_header_bytes=4096)


def _grpc_call() -> list[tuple[bool, bytes]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    client.send_headers(1, [(":method", "POST"), (":path", "/pkg.Svc/Call"), (":scheme", "http"),
                            (":authority", "svc"), ("content-type", "application/grpc")])
    client.send_data(1, b"\x00\x00\x00\x00\x02hi", end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(1, [(":status", "200"), ("content-type", "application/grpc")])
    server.send_data(1, b"\x00\x00\x00\x00\x00")
    server.send_headers(1, [("grpc-status", "0")], end_stream=True)
    return [(True, request), (False, server.data_to_send())]


SEEDS = [conversation(_grpc_call())]


def one_input(data: bytes) -> None:
    joined = bool(data[:1]) and data[0] & 1 == 1
    feed(Http2Parser(CONFIG, L7Stats(), "10.0.0.2:50051", preface_expected=not joined), data[1:], L7ParseError)


def main() -> None:
    run(one_input, [b"\x00" + s for s in SEEDS])


if __name__ == "__main__":
    main()
