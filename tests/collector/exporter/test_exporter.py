"""FlowExporter: the lines are Hubble GetFlowsResponse JSON that give back the flows; allow/deny
filters and the field mask apply; a collector's Observer feeds it as a hook; a disk that does not keep
up (a pipe nobody reads) never blocks the publisher — flows are dropped, counted, and reported in the
file as a lost_events line."""

import os
import threading
import time

from google.protobuf import json_format
from prometheus_client import CollectorRegistry

from collector.exporter import ExportConfig, ExportMetrics, Exporters, FlowExporter, StdoutSink
from collector.observer import Observer
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.collector.exporter.flows import read_lines, read_responses, sample_flows


def test_lines_are_hubble_json_that_give_back_the_flows(tmp_path):
    path = tmp_path / "events.log"
    exporter = FlowExporter(ExportConfig("all", str(path)))
    flows = sample_flows(50)
    exporter.offer(flows)
    assert exporter.drain()
    exporter.stop()
    responses = read_responses(path)
    assert [r.flow for r in responses] == flows
    assert all(r.node_name == "node-a" and r.time == r.flow.time for r in responses)
    assert read_lines(path)[0].startswith('{"flow":{"time":"')
    assert exporter.stats.exported == 50 and exporter.stats.dropped == 0


def test_allow_deny_filters_and_field_mask(tmp_path):
    path = tmp_path / "shop.log"
    config = ExportConfig("shop", str(path), allow=(flow_pb2.FlowFilter(source_pod=["shop/"]),),
                          deny=(flow_pb2.FlowFilter(source_pod=["shop/frontend-4"]),),
                          field_mask=("time", "source.pod_name", "destination.pod_name", "verdict"))
    exporter = FlowExporter(config)
    flows = sample_flows(10)
    exporter.offer(flows)
    exporter.drain()
    exporter.stop()
    responses = read_responses(path)
    wanted = [f for f in flows if f.source.namespace == "shop" and f.source.pod_name != "frontend-4"]
    assert len(responses) == len(wanted) == 4
    for response, flow in zip(responses, wanted):
        expected = flow_pb2.Flow(time=flow.time, verdict=flow.verdict)
        expected.source.pod_name, expected.destination.pod_name = flow.source.pod_name, flow.destination.pod_name
        assert response.flow == expected
        assert response.node_name == "node-a"  # the envelope is kept, as Hubble's exporter keeps it
    assert exporter.stats.filtered == 6


def test_end_time_stops_the_export(tmp_path):
    path = tmp_path / "ended.log"
    exporter = FlowExporter(ExportConfig("ended", str(path), end_ns=time.time_ns() - 1))
    exporter.offer(sample_flows(5))
    exporter.drain()
    exporter.stop()
    assert read_lines(path) == [] and exporter.stats.filtered == 5


def test_observer_hook_exports_what_the_collector_publishes(tmp_path):
    observer = Observer("node-x")
    exporters = Exporters([FlowExporter(ExportConfig("static-exporter", str(tmp_path / "node.log")))])
    observer.hooks.append(exporters.observe)
    flows = sample_flows(20)
    for flow in flows:
        flow.ClearField("node_name")
        flow.ClearField("uuid")
    observer.publish_many(flows)
    exporters.drain()
    registry = CollectorRegistry()
    ExportMetrics(lambda: exporters.all).register(registry)
    exporters.stop()
    responses = read_responses(tmp_path / "node.log")
    assert [r.flow for r in responses] == flows  # with the uuid and node name the Observer gave them
    assert all(r.flow.uuid and r.node_name == "node-x" for r in responses)
    assert registry.get_sample_value("flowscope_export_flows_total", {"exporter": "static-exporter"}) == 20
    assert registry.get_sample_value("flowscope_exporters") == 1


def test_a_slow_disk_drops_and_counts_instead_of_blocking(tmp_path):
    fifo = tmp_path / "slow"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read: writes block once it is full
    writer = open(fifo, "wb", buffering=0)
    exporter = FlowExporter(ExportConfig("slow", str(fifo)), sink=StdoutSink(writer), queue_flows=1000)
    flows = sample_flows(20_000)
    for i in range(0, len(flows), 100):
        exporter.offer(flows[i:i + 100])  # returns at once even with the writer stuck in write()
    assert exporter.stats.dropped > 0

    received = bytearray()
    done = threading.Event()

    def read():
        os.set_blocking(reader, True)
        while chunk := os.read(reader, 1 << 16):
            received.extend(chunk)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    exporter.drain(30)
    exporter.offer(sample_flows(1))  # after a drop, the next batch starts with a lost_events line
    exporter.drain(30)
    exporter.stop()
    writer.close()
    assert done.wait(30)
    responses = [json_format.Parse(line, observer_pb2.GetFlowsResponse()) for line in received.decode().splitlines()]
    lost = sum(r.lost_events.num_events_lost for r in responses if r.HasField("lost_events"))
    flows_written = sum(1 for r in responses if r.HasField("flow"))
    assert lost == exporter.stats.dropped
    assert flows_written == exporter.stats.exported == 20_001 - lost
    assert all(r.lost_events.source == flow_pb2.OBSERVER_EVENTS_QUEUE for r in responses if r.HasField("lost_events"))
