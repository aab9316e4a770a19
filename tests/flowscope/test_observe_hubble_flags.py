"""observe's Hubble flags end to end against a real Observer on a real gRPC server: --input-file
(Hubble JSON lines, our own -o json output, stdin), --field-mask, --time-format, --color,
--http-header and --node-label."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from collector.observer import Observer, create_server
from flowscope.cli import main
from flowscope.printer import Printer, Style, format_compact
from flowscope.timeformat import format_time
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import BASE_NS, endpoint, http_flow, make_flow
from tests.fixtures.cli import ROOT

T = BASE_NS + 123_456_789  # 2023-11-14T22:13:20.123456789Z


def flows() -> list[flow_pb2.Flow]:
    out = [make_flow(sport=30000 + i, time_ns=T + i * 10**9) for i in range(10)]
    ok = http_flow("GET", "http://backend:8080/api", code=200, time_ns=T + 20 * 10**9, node_labels=["zone=a"])
    ok.l7.http.headers.add(key="content-type", value="application/json")
    failed = http_flow("POST", "http://backend:8080/api", code=503, time_ns=T + 21 * 10**9,
                       node_labels=["zone=b", "role=edge"])
    failed.l7.http.headers.add(key="content-type", value="text/html")
    drop = make_flow("10.244.0.30", "10.244.0.10", time_ns=T + 22 * 10**9, verdict=flow_pb2.DROPPED,
                     src=endpoint("shop", "db-0", ["k8s:app=db"]))
    drop.counters.packets_forward = 3  # a flowscope-only field, left out of Hubble's lines
    return out + [ok, failed, drop]


@pytest.fixture(scope="module")
def server():
    observer = Observer("node-1")
    for flow in flows():
        observer.publish(flow)
    srv, port = create_server(observer, "127.0.0.1:0")
    yield f"127.0.0.1:{port}"
    srv.stop(0).wait(5)


def observe(capsys, *flags) -> tuple[int, list[str], str]:
    code = main(["observe", *flags])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.fixture(scope="module")
def export(server, tmp_path_factory):
    """The server's flows as `observe --all -o json` wrote them: Hubble's own line format."""
    path = tmp_path_factory.mktemp("flows") / "flows.json"
    out = subprocess.run([sys.executable, "-m", "flowscope", "observe", "--server", server, "--all", "-o", "json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    path.write_text(out.stdout)
    return path


@pytest.mark.parametrize("flags", [
    [], ["--http-status", "5+"], ["--verdict", "DROPPED"], ["--not", "--verdict", "DROPPED"],
    ["--from-pod", "shop/db"], ["--port", "30003"], ["--protocol", "http"], ["--label", "app=db"],
    ["--since", "2023-11-14T22:13:25Z", "--until", "2023-11-14T22:13:29Z"], ["--first", "3"], ["--last", "2"],
    ["--http-header", "content-type:text/html"], ["--node-label", "zone=a"],
])
def test_input_file_gives_what_the_server_gives(server, export, capsys, flags):
    number = [] if any(f in flags for f in ("--first", "--last", "--since")) else ["--all"]
    _, from_server, _ = observe(capsys, "--server", server, *number, *flags)
    code, from_file, err = observe(capsys, "--input-file", str(export), *flags)
    assert code == 0 and not err, err
    assert from_file == from_server and from_file, flags


def test_input_file_reads_stdin_other_hubble_lines_and_reports_bad_ones(export):
    hubble_line = ('{"flow":{"time":"1970-01-01T00:20:34.567800Z","verdict":"DROPPED","IP":{"source":"1.1.1.1",'
                   '"destination":"2.2.2.2"},"l4":{"TCP":{"source_port":31793,"destination_port":8080}},'
                   '"source":{"identity":4},"destination":{"identity":12345},"Type":"L3_L4","node_name":"k8s1",'
                   '"event_type":{"type":1,"sub_type":133},"is_reply":false,"Summary":"TCP Flags: SYN",'
                   '"a_field_of_a_newer_hubble":{"x":1}},"node_name":"k8s1","time":"1970-01-01T00:20:34.567800Z"}')
    text = export.read_text() + hubble_line + "\nnot json\n"
    out = subprocess.run([sys.executable, "-m", "flowscope", "observe", "--input-file", "-", "--verdict", "DROPPED"],
                         cwd=ROOT, input=text, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and lines[-1] == (  # hubble's own printer_test.go compact line for this flow
        "Jan  1 00:20:34.567: 1.1.1.1:31793 (health) -> 2.2.2.2:8080 (ID:12345) Policy denied DROPPED "
        "(TCP Flags: SYN)")
    assert out.stderr == f"warning: -:{len(text.splitlines())}: not a Hubble flow line, skipped " \
                         "(Failed to load JSON: Expecting value: line 1 column 1 (char 0).)\n"


def test_input_file_errors_are_one_line(tmp_path, capsys):
    code = main(["observe", "--input-file", str(tmp_path / "nope.json")])
    assert code == 1
    assert capsys.readouterr().err == (f"flowscope observe: error: --input-file {tmp_path}/nope.json: No such "
                                       "file or directory (expected a file of Hubble JSON flow lines, or - for stdin)\n")


def test_flowscope_fields_round_trip_through_a_file(server, tmp_path, capsys):
    _, lines, _ = observe(capsys, "--server", server, "--verdict", "DROPPED", "-o", "json")
    assert "counters" not in lines[0], "Hubble's lines by default"
    _, full, _ = observe(capsys, "--server", server, "--verdict", "DROPPED", "-o", "json", "--flowscope-fields")
    path = tmp_path / "full.json"
    path.write_text("\n".join(full) + "\n")
    _, back, _ = observe(capsys, "--input-file", str(path), "-o", "json", "--flowscope-fields")
    assert back == full and json.loads(back[0])["flow"]["counters"] == {"packets_forward": "3"}


def test_field_mask_keeps_only_the_named_fields(server, export, capsys):
    code, lines, _ = observe(capsys, "--server", server, "--all", "-o", "json", "--field-mask", "time,verdict",
                             "--field-mask", "source.pod_name")
    assert code == 0 and len(lines) == 13
    for line in lines:
        assert set(json.loads(line)["flow"]) <= {"time", "verdict", "source"}
        assert set(json.loads(line)["flow"].get("source", {})) <= {"pod_name"}
    _, masked, _ = observe(capsys, "--input-file", str(export), "-o", "json", "--field-mask", "time,verdict",
                           "--field-mask", "source.pod_name")
    assert masked == lines
    code, _, err = observe(capsys, "--server", server, "--field-mask", "time")
    assert code == 1 and "the compact output needs fields the mask may leave out; use -o json" in err
    code, _, err = observe(capsys, "--server", server, "-o", "json", "--field-mask", "time,nonsense")
    assert code == 1 and "--field-mask time,nonsense: names fields flow.Flow does not have" in err


@pytest.mark.parametrize("name, nanos, text", [
    ("StampMilli", 123_456_789, "Nov 14 22:13:20.123"), ("YearMonthDay", 0, "2023-11-14"),
    ("YearMonthDayHour", 0, "2023-11-14T22Z"), ("YearMonthDayHourMinute", 0, "2023-11-14T22:13Z"),
    ("RFC3339", 123_456_789, "2023-11-14T22:13:20Z"), ("RFC3339Milli", 123_456_789, "2023-11-14T22:13:20.123Z"),
    ("RFC3339Micro", 123_456_789, "2023-11-14T22:13:20.123456Z"),
    ("RFC3339Nano", 123_456_789, "2023-11-14T22:13:20.123456789Z"),
    ("RFC3339Milli", 120_000_000, "2023-11-14T22:13:20.12Z"), ("RFC3339Nano", 0, "2023-11-14T22:13:20Z"),
    ("RFC1123Z", 5, "Tue, 14 Nov 2023 22:13:20 +0000"),
])
def test_time_formats_render_as_go_layouts(name, nanos, text):
    assert format_time(BASE_NS // 10**9, nanos, name) == text


def test_time_format_flag_applies_to_compact_dict_and_table(server, capsys):
    _, lines, _ = observe(capsys, "--server", server, "--first", "1", "--time-format", "rfc3339micro")
    assert lines[0].startswith("2023-11-14T22:13:20.123456Z: default/frontend-7d4f9:30000 (ID:256) ->")
    _, lines, _ = observe(capsys, "--server", server, "--first", "1", "-o", "dict", "--time-format", "RFC1123Z")
    assert lines[0] == "  TIMESTAMP: Tue, 14 Nov 2023 22:13:20 +0000"
    _, lines, _ = observe(capsys, "--server", server, "--first", "1", "-o", "table", "--time-format", "YearMonthDay")
    assert lines[1].startswith("2023-11-14   default/frontend-7d4f9:30000")
    code, _, err = observe(capsys, "--server", server, "--time-format", "Kitchen")
    assert code == 1 and "--time-format 'Kitchen': expected one of YearMonthDay," in err


def test_colors_as_hubble_prints_them(server, capsys):
    drop = flows()[-1]
    response = observer_pb2.GetFlowsResponse(flow=drop, node_name="node-1", time=drop.time)
    assert format_compact(response, style=Style(color=True)) == (
        "Nov 14 22:13:42.123: \x1b[36mshop/db-0:\x1b[33m43210\x1b[0m\x1b[0m \x1b[35m(unknown)\x1b[0m -> "
        "\x1b[36mdefault/backend-5c8b6:\x1b[33m8080\x1b[0m\x1b[0m \x1b[35m(ID:257)\x1b[0m to-endpoint "
        "\x1b[31mDROPPED\x1b[0m (TCP Flags: SYN)")
    table = io.StringIO()
    printer = Printer("table", table, io.StringIO(), style=Style(color=True))
    printer.write(response)
    printer.close()
    assert "\x1b[" not in table.getvalue(), "hubble's table is never coloured"
    _, always, _ = observe(capsys, "--server", server, "--verdict", "DROPPED", "--color", "always")
    assert always[0].endswith("\x1b[31mDROPPED\x1b[0m (TCP Flags: SYN)")
    _, auto, _ = observe(capsys, "--server", server, "--verdict", "DROPPED")
    assert "\x1b[" not in auto[0], "auto: not a terminal, no colours"


def test_color_auto_follows_the_terminal_and_no_color():
    from flowscope.commands.observe import use_color

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_color("auto", Tty(), {"TERM": "xterm"}) and not use_color("auto", io.StringIO(), {})
    assert not use_color("auto", Tty(), {"NO_COLOR": ""}) and not use_color("auto", Tty(), {"TERM": "dumb"})
    assert use_color("always", io.StringIO(), {}) and not use_color("never", Tty(), {})


def test_http_header_and_node_label_filters(server, capsys):
    _, lines, _ = observe(capsys, "--server", server, "--http-header", "content-type:application/json")
    assert len(lines) == 1 and "HTTP/1.1 200" in lines[0]
    _, lines, _ = observe(capsys, "--server", server, "--node-label", "role=edge")
    assert len(lines) == 1 and "HTTP/1.1 503" in lines[0]
    _, lines, _ = observe(capsys, "--server", server, "--node-label", "zone in (a,b)", "--not", "--http-status", "5+")
    assert len(lines) == 1 and "HTTP/1.1 200" in lines[0]
    code, _, err = observe(capsys, "--server", server, "--http-header", "content-type")
    assert code == 1 and "--http-header 'content-type': expected name:value" in err
    code, _, err = observe(capsys, "--server", server, "--node-label", "zone in (a")
    assert code == 1 and "--node-label" in err and "node_labels filter" in err
