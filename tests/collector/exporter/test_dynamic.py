"""Hubble's dynamic exporter: editing the flowLogs file adds, changes and removes exporters while the
others keep writing; a broken edit keeps what runs; no restart."""

import os

import pytest

from collector.exporter import DynamicExporters, ExportConfigError
from lab.testbed.wait import wait_for
from tests.collector.exporter.flows import read_responses, sample_flows


def write_config(path, *entries: str) -> None:
    replace_text(path, "flowLogs:\n" + "".join(f"- {e}\n" for e in entries))


def replace_text(path, text: str) -> None:
    """Swap the file whole, as the kubelet updates a ConfigMap volume: an in-place rewrite can be read
    empty by two polls in a row on a machine loaded enough to pause the writer between truncate and
    write (the watcher's two-poll debounce covers editors, not a writer held off the CPU)."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    os.replace(staged, path)


def names(dynamic: DynamicExporters) -> list[str]:
    return sorted(e.name for e in dynamic.exporters)


def offer(dynamic: DynamicExporters, flows) -> None:
    dynamic.offer(flows)
    for exporter in dynamic.exporters:
        assert exporter.drain()


def test_edits_add_change_and_remove_exporters_without_a_restart(tmp_path):
    config = tmp_path / "flowlogs.yaml"
    all_log, drops_log = tmp_path / "all.log", tmp_path / "drops.log"
    write_config(config, f"{{name: all, filePath: {all_log}}}")
    dynamic = DynamicExporters(str(config), poll_s=0.05)
    try:
        assert names(dynamic) == ["all"]
        all_exporter = dynamic.exporters[0]
        offer(dynamic, sample_flows(4))

        write_config(config, f"{{name: all, filePath: {all_log}}}",
                     f"{{name: drops, filePath: {drops_log}, includeFilters: [{{verdict: [DROPPED]}}], "
                     "fieldMask: [verdict, destination.pod_name]}")
        wait_for(lambda: names(dynamic) == ["all", "drops"], what="the drops exporter to start")
        assert dynamic.exporters[0] is all_exporter  # untouched: the same exporter keeps its file open
        offer(dynamic, sample_flows(6))
        drops = read_responses(drops_log)
        assert len(drops) == 3 and all(r.flow.verdict == 2 and r.flow.destination.pod_name == "db-0"
                                       and not r.flow.source.pod_name for r in drops)

        write_config(config, f"{{name: all, filePath: {all_log}, includeFilters: [{{source_pod: [shop/]}}]}}")
        wait_for(lambda: names(dynamic) == ["all"] and dynamic.exporters[0] is not all_exporter,
                 what="drops removed and all restarted with its filter")
        offer(dynamic, sample_flows(6))
        assert len(read_responses(all_log)) == 4 + 6 + 3
        assert len(read_responses(drops_log)) == 3  # stopped: the removed exporter wrote nothing more

        replace_text(config, "flowLogs: [{name: all")  # broken: the running exporters stay
        reloads = dynamic.reloads
        assert not dynamic.reload()
        assert names(dynamic) == ["all"] and dynamic.reloads == reloads

        config.unlink()  # no file: no exporters
        wait_for(lambda: names(dynamic) == [], what="every exporter stopped")
    finally:
        dynamic.stop()


def test_a_missing_or_bad_file_at_start_is_an_error(tmp_path):
    with pytest.raises(ExportConfigError, match="file not found"):
        DynamicExporters(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    write_config(bad, "{name: a}")
    with pytest.raises(ExportConfigError, match="a file path"):
        DynamicExporters(str(bad))
