"""`flowscope collector` flags that need no kernel: the hidden --dump-bpf and bad values."""

from __future__ import annotations

import subprocess

from tests.fixtures.cli import flowscope, flowscope_in_process


def collector(*args: str) -> subprocess.CompletedProcess:
    """Values refused while reading the arguments: the CLI's main() in this process."""
    return flowscope_in_process("collector", *args)


def test_dump_bpf_shows_the_program_as_compiled():
    result = collector("--dump-bpf", "--aggregation", "none", "--payload-bytes", "256", "--pin-dir", "/sys/fs/bpf/x")
    assert result.returncode == 0, result.stderr
    assert "-DAGGREGATION=0" in result.stdout and "-DPAYLOAD_BYTES=256" in result.stdout
    assert '-DFLOWSCOPE_PIN_DIR="/sys/fs/bpf/x"' in result.stdout
    assert "int from_pod(struct __sk_buff *skb)" in result.stdout and "struct flow_event {" in result.stdout


def test_bad_values_are_one_line_errors():
    result = collector("--payload-bytes", "0", "--dump-bpf")
    assert result.returncode == 1
    assert result.stderr.strip() == "flowscope collector: error: payload bytes 0: expected 1..16384"
    result = collector("--perf-pages", "3000", "--dump-bpf")
    assert (result.returncode, result.stderr.strip()) == \
        (1, "flowscope collector: error: perf pages 3000: expected a power of two")
    result = collector("--l7-ports", "80,http")
    assert result.returncode == 2 and "expected comma-separated port numbers" in result.stderr


def test_plaintext_beyond_loopback_and_bad_certificates_fail_before_the_datapath_loads(test_pki):
    # as processes: were a check missing, the command would go on to load the datapath
    result = flowscope("collector", "--listen-address", ":4244", "--pin-dir", "/sys/fs/bpf/never-made")
    assert result.returncode == 1 and result.stderr.splitlines() == [
        "flowscope collector: error: :4244: will not serve flows in plaintext beyond loopback; give "
        "--tls-cert-file and --tls-key-file (`flowscope certs generate DIR` makes them), listen on localhost, "
        "or pass --disable-server-tls"]
    result = flowscope("collector", "--tls-cert-file", test_pki.expired_server.cert,
                       "--tls-key-file", test_pki.expired_server.key)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "expired-server.crt: certificate CN=relay.flowscope.test,O=flowscope expired on" in result.stderr
    result = flowscope("collector", "--tls-cert-file", test_pki.server.cert)
    assert result.returncode == 1 and result.stderr.splitlines() == [
        "flowscope collector: error: server TLS needs both --tls-cert-file and --tls-key-file"]
