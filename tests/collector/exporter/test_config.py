"""Exporter settings from flags and from Hubble's dynamic exporter file: Hubble's own example file
parses; every bad value is refused with a message naming it."""

import pytest

from collector.exporter import ExportConfigError, parse_dynamic, parse_filter_list
from proto.flow import flow_pb2

# Hubble's example (cilium pkg/hubble/exporter testdata), with our paths.
HUBBLE_EXAMPLE = """
flowLogs:
- name: "test001"
  filePath: "/var/log/network/flow-log/pa/test001.log"
  fieldMask: []
  fieldAggregate: []
  aggregationInterval: 0s
  includeFilters: []
  excludeFilters: []
  fileMaxSizeMb: 0
  fileMaxBackups: 0
  fileCompress: false
  end: "2023-10-09T23:59:59-07:00"
- name: "test002"
  filePath: "/var/log/network/flow-log/pa/test002.log"
  fieldMask: ["source.namespace", "source.pod_name", "destination.namespace", "destination.pod_name", "verdict"]
  includeFilters:
  - source_pod: ["default/"]
    source_label: ["networking.example.com/flow-logs=enabled"]
    event_type:
    - type: 1
  - destination_pod: ["frontend/nginx-975996d4c-7hhgt"]
  excludeFilters: []
  fileMaxSizeMb: 10
  fileMaxBackups: 3
  fileCompress: true
- name: stdout-drops
  filePath: stdout
  includeFilters: [{verdict: [DROPPED]}]
"""


def test_hubble_example_file():
    configs = parse_dynamic(HUBBLE_EXAMPLE, "flowlogs.yaml")
    assert list(configs) == ["test001", "test002", "stdout-drops"]
    first, second, third = configs.values()
    assert (first.max_size_mb, first.max_backups, first.compress) == (10, 5, False)  # 0 = Hubble's defaults
    assert first.end_ns == 1696921199 * 10**9
    assert (second.max_size_mb, second.max_backups, second.compress) == (10, 3, True)
    assert second.field_mask == ("source.namespace", "source.pod_name", "destination.namespace",
                                 "destination.pod_name", "verdict")
    assert second.allow[0].source_pod == ["default/"] and second.allow[0].event_type[0].type == 1
    assert second.allow[1].destination_pod == ["frontend/nginx-975996d4c-7hhgt"]
    assert third.file_path == "stdout" and list(third.allow[0].verdict) == [flow_pb2.DROPPED]
    assert third.end_ns is None


def test_flag_filters_are_json_objects_one_after_another():
    filters = parse_filter_list('{"source_pod":["shop/"]} {"verdict":["DROPPED"]},{"protocol":["dns"]}', "--f")
    assert [f.source_pod for f in filters][0] == ["shop/"]
    assert list(filters[1].verdict) == [flow_pb2.DROPPED] and filters[2].protocol == ["dns"]
    assert parse_filter_list("", "--f") == ()


@pytest.mark.parametrize("text, message", [
    ('{"source_pod": ["shop/"]', "--export-allowlist '{\"source_pod\": [\"shop/\"]': expected JSON flow filters"),
    ('["shop/"]', "expected a flow filter object"),
    ('{"source_pood": ["x"]}', 'flow filter {"source_pood": ["x"]}'),
    ('{"verdict": ["MAYBE"]}', "MAYBE"),
])
def test_bad_flag_filters(text, message):
    with pytest.raises(ExportConfigError, match=None) as err:
        parse_filter_list(text, "--export-allowlist")
    assert message in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("flowLogs: [", "f.yaml: not valid YAML"),
    ("- a\n- b", "expected a mapping with a 'flowLogs' list"),
    ("flowLogs:\n- filePath: /tmp/a.log", "exporter: a name is required"),
    ("flowLogs:\n- name: a", "exporter 'a': a file path (or 'stdout') is required"),
    ("flowLogs:\n- {name: a, filePath: /x/a}\n- {name: a, filePath: /x/b}", "duplicated flow log name 'a'"),
    ("flowLogs:\n- {name: a, filePath: /x/a}\n- {name: b, filePath: /x/a}", "duplicated flow log path '/x/a'"),
    ("flowLogs:\n- {name: a, filePath: /x/a, filepath: /x/b}", "unknown key 'filepath'"),
    ("flowLogs:\n- {name: a, filePath: /x/a, fileMaxSizeMb: -1}", "file max size -1 MB"),
    ("flowLogs:\n- {name: a, filePath: /x/a, fileMaxBackups: many}", "fileMaxBackups 'many': expected a whole number"),
    ("flowLogs:\n- {name: a, filePath: /x/a, fieldMask: [source.pod]}", "field mask path 'source.pod'"),
    ("flowLogs:\n- {name: a, filePath: /x/a, includeFilters: [{http_status_code: [abc]}]}", "abc"),
    ("flowLogs:\n- {name: a, filePath: /x/a, excludeFilters: {verdict: [DROPPED]}}", "excludeFilters"),
    ("flowLogs:\n- {name: a, filePath: /x/a, end: tomorrow}", "end 'tomorrow'"),
    ("flowLogs:\n- {name: a, filePath: /x/a, fieldAggregate: [source]}", "fieldAggregate"),
])
def test_bad_dynamic_files(text, message):
    with pytest.raises(ExportConfigError) as err:
        parse_dynamic(text, "f.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
