"""A grpcio server and client without generated code (generic handlers, raw bytes messages).

    python -m lab.apps.grpc_demo server PORT | client PORT | load PORT N

`server PORT` serves demo.Echo: Say (unary; request b"fail" -> NOT_FOUND), Stream (server
streaming; request b"bad" -> INVALID_ARGUMENT after one message), Collect (client streaming).
`client PORT` makes a fixed mix of calls on one channel and prints, per line,
"<method> <status code name>" for every call as the client saw it.
`load PORT N` makes N unary calls back to back (every tenth fails) for bench/l7.py.
With FLOWSCOPE_GRPC_TLS=DIR (holding cert.pem and key.pem, subject CN=web) the server serves TLS and
the clients trust that certificate."""

import os
import sys
from concurrent import futures

import grpc


def say(request, context):
    if request == b"fail":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b"echo:" + request


def stream(request, context):
    yield b"first"
    if request == b"bad":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
    yield b"second"
    yield b"third"


def collect(request_iterator, context):
    return b"%d" % sum(len(r) for r in request_iterator)


def serve(port: int) -> None:
    handler = grpc.method_handlers_generic_handler("demo.Echo", {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    tls = os.environ.get("FLOWSCOPE_GRPC_TLS")
    if tls:
        with open(os.path.join(tls, "key.pem"), "rb") as key, open(os.path.join(tls, "cert.pem"), "rb") as cert:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        server.add_secure_port(f"[::]:{port}", credentials)
    else:
        server.add_insecure_port(f"[::]:{port}")  # every address: lab pods call it from another namespace
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()


def channel_to(target: str) -> grpc.Channel:
    tls = os.environ.get("FLOWSCOPE_GRPC_TLS")
    if not tls:
        return grpc.insecure_channel(target)
    with open(os.path.join(tls, "cert.pem"), "rb") as cert:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read())
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", "web")])


def client(target: str) -> None:
    """`target` is PORT (on 127.0.0.1) or HOST:PORT."""
    with channel_to(target if ":" in target else f"127.0.0.1:{target}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        say_call = channel.unary_unary("/demo.Echo/Say")
        stream_call = channel.unary_stream("/demo.Echo/Stream")
        collect_call = channel.stream_unary("/demo.Echo/Collect")
        plan = ([("Say", b"hello")] * 12 + [("Say", b"fail")] * 5 + [("Stream", b"go")] * 4
                + [("Stream", b"bad")] * 3 + [("Collect", None)] * 2)
        for method, request in plan:
            try:
                if method == "Say":
                    say_call(request, timeout=10)
                elif method == "Stream":
                    list(stream_call(request, timeout=10))
                else:
                    collect_call(iter([b"a", b"bb", b"ccc"]), timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as err:
                code = err.code()
            print(method, code.name, flush=True)


def load(port: int, calls: int) -> None:
    """Unary calls back to back (for bench/l7.py); prints how many completed with OK."""
    ok = 0
    with channel_to(f"127.0.0.1:{port}") as channel:
        say_call = channel.unary_unary("/demo.Echo/Say")
        for i in range(calls):
            try:
                say_call(b"fail" if i % 10 == 0 else b"hello", timeout=10)
                ok += 1
            except grpc.RpcError:
                pass
    print("OK", ok, "TOTAL", calls, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        client(sys.argv[2])
