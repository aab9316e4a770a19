"""`flowscope observe` end to end against a real Observer on a real gRPC server (TCP and unix socket),
and the requests it builds from hubble-style flags."""
import json
import os
import subprocess
import sys
import tempfile

import pytest
from google.protobuf import json_format

from collector.observer import Observer, create_server
from flowscope.cli import build_parser, main
from common.errors import UserError
from flowscope.commands.observe import build_request
from lab.testbed.wait import wait_for
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import BASE_NS, endpoint, http_flow, make_flow

NOW = BASE_NS + 3600 * 10**9
FF = flow_pb2.FlowFilter


def request_for(*flags: str) -> observer_pb2.GetFlowsRequest:
    args = build_parser("observe").parse_args(["observe", *flags])
    return build_request(args, NOW)


@pytest.fixture(scope="module")
def server():
    observer = Observer("node-1")
    for i in range(30):
        observer.publish(make_flow(sport=20000 + i, time_ns=BASE_NS + i * 10**9))
    observer.publish(http_flow(code=404, time_ns=BASE_NS + 40 * 10**9))
    observer.publish(make_flow("10.244.0.30", "10.244.0.10", time_ns=BASE_NS + 41 * 10**9,
                               src=endpoint("shop", "db-0", ["k8s:app=db"]), verdict=flow_pb2.DROPPED))
    with tempfile.TemporaryDirectory(prefix="fsobs-cli-") as tmp:
        sock = os.path.join(tmp, "observer.sock")
        srv, port = create_server(observer, "127.0.0.1:0", unix_socket=sock)
        yield f"127.0.0.1:{port}", f"unix://{sock}"
        srv.stop(0).wait(5)


def observe(capsys, *flags) -> tuple[int, list[str], str]:
    code = main(["observe", *flags])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_jsonpb_output_parses_back_into_get_flows_responses(server, capsys):
    code, lines, _ = observe(capsys, "--server", server[0], "--all", "-o", "jsonpb")
    assert code == 0 and len(lines) == 32
    parsed = [json_format.Parse(line, observer_pb2.GetFlowsResponse()) for line in lines]
    assert [p.flow.l4.TCP.source_port for p in parsed[:3]] == [20000, 20001, 20002]
    assert all(p.node_name == "node-1" and p.flow.uuid for p in parsed)
    assert json.loads(lines[0])["flow"]["source"]["pod_name"] == "frontend-7d4f9"


def test_default_is_last_20_compact_over_unix_socket(server, capsys):
    code, lines, _ = observe(capsys, "--server", server[1])
    assert code == 0 and len(lines) == 20
    assert lines[-1].startswith("Nov 14 22:14:01.000: shop/db-0:43210 (unknown) -> default/backend-5c8b6:8080")
    assert " -> default/backend-5c8b6:8080 (ID:257) to-endpoint FORWARDED (TCP Flags: SYN)" in lines[0]


@pytest.mark.parametrize("flags, expected", [
    (["--http-status", "4+", "-o", "json"], 1),
    (["--verdict", "dropped", "--all"], 1),
    (["--not", "--verdict", "DROPPED", "--all"], 31),
    (["-n", "shop", "--all"], 1),
    (["--from-pod", "shop/db", "--all"], 1),
    (["--pod", "default/backend", "--all"], 32),
    (["--ip", "10.244.0.30", "--all"], 1),
    (["--port", "20005"], 1),
    (["--protocol", "http", "--all"], 1),
    (["--label", "app=db", "--all"], 1),
    (["--first", "3"], 3),
    (["--last", "5"], 5),
    (["--since", "2023-11-14T22:13:25Z", "--until", "2023-11-14T22:13:29Z"], 5),
    (["--type", "trace:to-endpoint", "--tcp-flags", "SYN", "--node-name", "node-*", "--all"], 31),
])
def test_filters_select_flows(server, capsys, flags, expected):
    code, lines, _ = observe(capsys, "--server", server[0], *flags)
    assert code == 0 and len(lines) == expected


def test_bidirectional_flags_make_one_filter_per_side():
    req = request_for("--ip", "10.0.0.1", "--from-port", "80", "--verdict", "FORWARDED")
    assert list(req.whitelist) == [
        FF(source_ip=["10.0.0.1"], source_port=["80"], verdict=[flow_pb2.FORWARDED]),
        FF(destination_ip=["10.0.0.1"], source_port=["80"], verdict=[flow_pb2.FORWARDED])]
    assert req.number == 20 and not req.follow and not req.blacklist


def test_not_negates_only_the_next_filter():
    req = request_for("--protocol", "tcp", "--not", "--pod", "kube-system/coredns", "--port", "53")
    assert list(req.blacklist) == [FF(source_pod=["kube-system/coredns"]),
                                   FF(destination_pod=["kube-system/coredns"])]
    assert list(req.whitelist) == [FF(protocol=["tcp"], source_port=["53"]),
                                   FF(protocol=["tcp"], destination_port=["53"])]


@pytest.mark.parametrize("flags, fields", [
    (["-f"], dict(follow=True, number=0)),
    (["--all"], dict(number=2**64 - 1)),
    (["--first", "7"], dict(number=7, first=True)),
    (["--since", "5m"], dict(number=0)),
    (["--last", "3", "--follow"], dict(number=3, follow=True)),
])
def test_selection_flags(flags, fields):
    req = request_for(*flags)
    for name, value in fields.items():
        assert getattr(req, name) == value


def test_since_until_relative_and_pod_namespace():
    req = request_for("--since", "1h", "--until", "2023-11-14T22:13:25.5Z", "-n", "shop", "--pod", "db")
    assert req.since.ToNanoseconds() == NOW - 3600 * 10**9
    assert req.until.ToNanoseconds() == BASE_NS + 5 * 10**9 + 500_000_000
    assert list(req.whitelist) == [FF(source_pod=["shop/db"]), FF(destination_pod=["shop/db"])]
    req = request_for("--to-namespace", "shop", "--type", "drop", "-4")
    assert list(req.whitelist) == [FF(destination_pod=["shop/"], event_type=[flow_pb2.EventTypeFilter(type=1)],
                                      ip_version=[flow_pb2.IPv4])]


@pytest.mark.parametrize("flags, message", [
    (["--port", "http"], "--port 'http': expected a port number"),
    (["--from-ip", "10.0.0.999"], "--from-ip '10.0.0.999': expected an IP address or CIDR"),
    (["--protocol", "quic"], "--protocol 'quic': unknown protocol"),
    (["--verdict", "maybe"], "--verdict 'maybe': expected one of"),
    (["--type", "nope"], "--type 'nope': expected one of"),
    (["--tcp-flags", "SYN,XYZ"], "--tcp-flags 'SYN,XYZ': expected comma-separated flags"),
    (["--label", "app in (x"], "--label 'app in (x': "),
    (["--http-path", "(x"], "--http-path '(x': not a valid regular expression"),
    (["--since", "yesterday"], "--since 'yesterday': expected a duration ago"),
    (["--first", "2", "--follow"], "--first cannot be combined with --follow"),
    (["--identity", "²"], "--identity '²': expected a numeric identity"),
    (["--type", "drop:²"], "--type 'drop:²': unknown sub type"),
])
def test_bad_flag_values_name_the_flag(flags, message):
    with pytest.raises(UserError, match=None) as err:
        request_for(*flags)
    assert message in str(err.value)


def test_errors_are_one_line_with_exit_1(server, capsys):
    code, _, err = observe(capsys, "--server", "127.0.0.1:1", "--timeout", "0.5")
    assert code == 1 and err == ("flowscope observe: error: cannot connect to 127.0.0.1:1 (connection refused): "
                                 "is the collector (:4244) or relay (:4245) running there?\n")
    code, _, err = observe(capsys, "--server", server[0], "--since", "1m", "--until", "2h")
    assert code == 1 and "rejected the request: since (" in err and err.count("\n") == 1
    code, _, err = observe(capsys, "--server", server[0], "--port", "99999")
    assert code == 1 and err.startswith("flowscope observe: error: --port '99999'")


def test_console_command_runs(server):
    out = subprocess.run([sys.executable, "-m", "flowscope", "observe", "--server", server[0], "--last", "1",
                          "-o", "json"], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["flow"]["verdict"] == "DROPPED"


@pytest.mark.timeout(60)  # the readline below would otherwise wait for ever if output were buffered
def test_follow_prints_new_flows_as_they_come():
    observer = Observer("node-f")
    srv, port = create_server(observer, "127.0.0.1:0")
    proc = subprocess.Popen([sys.executable, "-m", "flowscope", "observe", "--server", f"127.0.0.1:{port}", "-f",
                             "-o", "jsonpb"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

    def following() -> bool:
        assert proc.poll() is None, proc.stderr.read()
        return observer.followers >= 1

    try:
        wait_for(following, 30, "`observe -f` counted as a follower", interval=0.02)
        for port_ in (1, 2, 3):
            observer.publish(make_flow(sport=port_))
        got = [json.loads(proc.stdout.readline()) for _ in range(3)]  # arrives through a pipe, unbuffered
        assert [g["flow"]["l4"]["TCP"]["source_port"] for g in got] == [1, 2, 3]
    finally:
        proc.terminate()
        proc.wait(10)
        srv.stop(0).wait(5)
