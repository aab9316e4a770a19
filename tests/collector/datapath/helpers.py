"""Topology and small waits shared by the datapath tests."""

from __future__ import annotations

import time

from proto.flow import flow_pb2
from lab.testbed.wait import wait_for

UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353)); "
            "exec('while True:\\n d, a = s.recvfrom(2048)\\n s.sendto(d, a)')")

TCP_SINK = ("import socket, threading; s = socket.socket(); s.bind(('0.0.0.0', 9999)); s.listen(64); "
            "exec('def drain(c):\\n while c.recv(65536): pass\\n c.close()\\nwhile True:\\n c, a = s.accept()\\n "
            "threading.Thread(target=drain, args=(c,)).start()')")

TOPOLOGY = {
    "namespaces": {"shop": {"labels": {"team": "shop"}}, "data": {}},
    "pods": [
        {"name": "client", "namespace": "shop", "kind": "Deployment", "labels": {"app": "client"}},
        {"name": "server", "namespace": "data", "kind": "Deployment", "labels": {"app": "server", "tier": "db"},
         "commands": ["exec $FLOWSCOPE_PYTHON -m http.server 8080 --directory /usr/bin", f'exec $FLOWSCOPE_PYTHON -c "{UDP_ECHO}"',
                      f'exec $FLOWSCOPE_PYTHON -c "{TCP_SINK}"']},
    ],
}


def wait_listening(lab, pod: str, port: int, udp: bool = False, timeout: float = 15.0) -> None:
    wait_for(lambda: f":{port} " in lab.exec(pod, ["ss", "-lnu" if udp else "-lnt"]).stdout, timeout,
             f"{pod} listening on {'udp' if udp else 'tcp'} port {port}", interval=0.1)


def tcp_ports(flow: flow_pb2.Flow) -> tuple[int, int]:
    return flow.l4.TCP.source_port, flow.l4.TCP.destination_port


def of_connection(client_port: int, server_port: int = 8080):
    """Matches L3/L4 flows of one TCP connection, either direction."""
    def match(flow: flow_pb2.Flow) -> bool:
        return flow.Type == flow_pb2.L3_L4 and flow.l4.HasField("TCP") and \
            {flow.l4.TCP.source_port, flow.l4.TCP.destination_port} == {client_port, server_port}
    return match


def curl(lab, pod: str, url: str, *extra: str) -> int:
    """Runs curl in `pod`; returns its local port (so the test can find its connection)."""
    out = lab.exec(pod, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{local_port}", *extra, url],
                   check=True).stdout.split()
    assert out[0] == "200", f"curl {url}: HTTP {out[0]}"
    return int(out[1])


class Capture:
    """tcpdump on a host-side pod device, started before the traffic it must see."""

    def __init__(self, device: str, path: str) -> None:
        import subprocess

        self.path = path
        self.proc = subprocess.Popen(["tcpdump", "-i", device, "--immediate-mode", "-s", "128", "-U", "-w", path, "tcp"],
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        assert "listening on" in line, f"tcpdump did not start: {line}"

    def stop(self) -> list[tuple[str, int, str, int, int, str]]:
        """(src, sport, dst, dport, wire length, TCP flags as scapy writes them: "S", "SA", "FA"...) of
        every captured TCP packet."""
        from scapy.all import IP, IPv6, TCP, PcapReader

        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        packets = []
        with PcapReader(self.path) as reader:
            for pkt in reader:
                ip = pkt[IP] if IP in pkt else pkt[IPv6]
                packets.append((ip.src, pkt[TCP].sport, ip.dst, pkt[TCP].dport, pkt.wirelen, str(pkt[TCP].flags)))
        return packets
