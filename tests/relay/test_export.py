"""`flowscope relay --export-*` as a user runs it, following two real collector servers: every merged
flow goes to a file rotated at its size limit (the right number of gzipped backups, no line split), a
dynamic exporter file adds a filtered, field-masked export and an edit of it adds and removes
exporters while the relay runs; every line parses as Hubble's GetFlowsResponse and gives back the
flows the collectors published."""

import gzip
import pathlib

import pytest
from google.protobuf import json_format

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.collector.exporter.flows import sample_flows
from tests.fixtures.cli import flowscope
from tests.relay.nodes import wait_for

MB = 1024 * 1024


def complete_lines(path: pathlib.Path) -> list[str]:
    """The lines written so far (a line being written is left out)."""
    if not path.exists():
        return []
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return data.decode().splitlines()[:data.count(b"\n")]


def parse(lines: list[str]) -> list[observer_pb2.GetFlowsResponse]:
    return [json_format.Parse(line, observer_pb2.GetFlowsResponse()) for line in lines]  # strict


def write_flowlogs(path: pathlib.Path, *entries: str) -> None:
    path.write_text("flowLogs:\n" + "".join(f"- {e}\n" for e in entries))


@pytest.mark.integration  # a chdb store in a subprocess
def test_relay_exports_rotates_filters_masks_and_reloads(node_factory, relay_process, tmp_path):  # noqa: F811
    a, b = node_factory("node-a"), node_factory("node-b")
    flows = sample_flows(6000)  # even: shop frontend -> backend (node-a), odd: dropped to data (node-b)
    for i, flow in enumerate(flows):
        flow.node_name = "node-a" if i % 2 == 0 else "node-b"
        (a if i % 2 == 0 else b).publish(flow)
    events, drops, shop = tmp_path / "events.log", tmp_path / "drops.log", tmp_path / "shop.log"
    flowlogs = tmp_path / "flowlogs.yaml"
    mask = "[time, verdict, source.pod_name, destination.pod_name]"
    write_flowlogs(flowlogs, f"{{name: drops, filePath: {drops}, includeFilters: [{{verdict: [DROPPED]}}], "
                             f"fieldMask: {mask}}}")
    relay = relay_process("--peer", f"node-a={a.address}", "--peer", f"node-b={b.address}", "--storage", "none",
                          "--export-file-path", str(events), "--export-file-max-size-mb", "1",
                          "--export-file-max-backups", "2", "--export-file-compress",
                          "--export-config", str(flowlogs))

    def last_exported() -> str:
        lines = complete_lines(events)  # read once: the file may rotate between two reads
        return parse(lines[-1:])[0].flow.uuid if lines else ""

    wait_for(lambda: last_exported() == flows[-1].uuid, timeout=60, what="the last flow exported")
    backups = sorted(tmp_path.glob("events-*.log.gz"))
    assert len(backups) == 2, [p.name for p in tmp_path.iterdir()]
    assert not list(tmp_path.glob("events-*.log"))  # every backup compressed
    exported = [line for p in [*backups, events] for line in complete_lines(p)]
    for p in [*backups, events]:
        size = len(gzip.decompress(p.read_bytes())) if p.suffix == ".gz" else p.stat().st_size
        assert 0.9 * MB < size <= MB or p == events, (p.name, size)
    responses = parse(exported)
    assert [r.flow for r in responses] == flows[-len(responses):]  # the newest flows, whole, in time order
    assert all(r.node_name == r.flow.node_name and r.time == r.flow.time for r in responses)
    assert 3 * MB > sum(len(line) + 1 for line in exported) > 2 * MB

    wait_for(lambda: len(complete_lines(drops)) == 3000, what="3000 dropped flows in drops.log")
    masked = parse(complete_lines(drops))
    expected = []
    for flow in flows[1::2]:
        m = flow_pb2.Flow(time=flow.time, verdict=flow_pb2.DROPPED)
        m.source.pod_name, m.destination.pod_name = flow.source.pod_name, flow.destination.pod_name
        expected.append(m)
    assert [r.flow for r in masked] == expected

    # An edit of the file while the relay runs: drops removed, shop added.
    write_flowlogs(flowlogs, f"{{name: shop, filePath: {shop}, includeFilters: [{{source_pod: [shop/]}}]}}")
    wait_for(lambda: any("started shop; stopped drops" in line for line in relay.log), timeout=20,
             what="the relay to reload its export config")
    more = sample_flows(10)
    for i, flow in enumerate(more):
        flow.node_name = "node-a" if i % 2 == 0 else "node-b"
        (a if i % 2 == 0 else b).publish(flow)
    wait_for(lambda: len(complete_lines(shop)) == 5, what="5 shop flows in shop.log")
    assert [r.flow for r in parse(complete_lines(shop))] == more[0::2]
    wait_for(lambda: parse(complete_lines(events)[-1:])[0].flow.uuid == more[-1].uuid, what="static export goes on")
    assert len(complete_lines(drops)) == 3000  # the removed exporter wrote nothing more
    relay.stop()
    assert relay.proc.returncode == 0

    # What was exported reads back: `flowscope observe --input-file` gives the same flows, and its filters
    # select from them as they would from a server.
    written = parse(complete_lines(events))
    assert any(r.flow.verdict == flow_pb2.DROPPED for r in written) and any(
        r.flow.verdict == flow_pb2.FORWARDED for r in written)
    read = flowscope("observe", "--input-file", str(events), "--all", "-o", "json")
    assert read.returncode == 0, read.stderr
    assert [r.flow for r in parse(read.stdout.splitlines())] == [r.flow for r in written]
    dropped = flowscope("observe", "--input-file", str(events), "--all", "--verdict", "DROPPED", "-o", "json")
    assert [r.flow for r in parse(dropped.stdout.splitlines())] == [
        r.flow for r in written if r.flow.verdict == flow_pb2.DROPPED]
