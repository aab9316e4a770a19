"""A throwaway ClickHouse on this machine, for the suite and the benchmarks: Debian's clickhouse-server
(18.16) on loopback with its own data directory and ephemeral ports, ZooKeeper for a cluster, and random
database names."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid

CLICKHOUSE_SERVER = "/usr/sbin/clickhouse-server"
TEST_USER, TEST_PASSWORD = "flowscope", "s3cret-pw"

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{path}/server.log</log><errorlog>{path}/server.err.log</errorlog>
    <size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <interserver_http_port>{interserver_port}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>{path}/data/</path>
  <tmp_path>{path}/tmp/</tmp_path>
  <user_files_path>{path}/user_files/</user_files_path>
  <format_schema_path>{path}/format_schemas/</format_schema_path>
  <users_config>{path}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
{extra}
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <{user}><password>{password}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota></{user}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
  </default></quotas>
</yandex>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM to the process group, SIGKILL if it does not exit within 20 s."""
    if process and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@dataclasses.dataclass
class ClickHouseServer:
    """One clickhouse-server process. `restart()` keeps the data directory and ports."""

    path: pathlib.Path
    tcp_port: int
    http_port: int
    interserver_port: int
    extra_config: str = ""
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"clickhouse://{TEST_USER}:{TEST_PASSWORD}@127.0.0.1:{self.tcp_port}"

    def store_url(self, database: str, **params) -> str:
        """A storage URL of `database` on this server (its HTTP port too: flows are inserted there)."""
        query = "&".join(f"{k}={v}" for k, v in {"http_port": self.http_port, **params}.items())
        return f"{self.url}/{database}?{query}"

    def start(self, timeout: float = 60.0) -> None:
        if not os.path.exists(CLICKHOUSE_SERVER):
            raise RuntimeError(f"{CLICKHOUSE_SERVER} is missing: install Debian's clickhouse-server "
                               "(deploy/local/setup.sh)")
        for sub in ("data", "tmp", "user_files", "format_schemas"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        (self.path / "users.xml").write_text(USERS.format(user=TEST_USER, password=TEST_PASSWORD))
        (self.path / "config.xml").write_text(CONFIG.format(
            path=self.path, tcp_port=self.tcp_port, http_port=self.http_port,
            interserver_port=self.interserver_port, extra=self.extra_config))
        log = open(self.path / "stdout.log", "ab")
        self.process = subprocess.Popen([CLICKHOUSE_SERVER, f"--config-file={self.path}/config.xml"],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=self.path,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited with {self.process.returncode}; "
                                   f"see {self.path}/server.err.log")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"clickhouse-server on port {self.tcp_port} not ready after {timeout}s")

    def ready(self) -> bool:
        from clickhouse_driver import Client
        try:
            Client("127.0.0.1", port=self.tcp_port, connect_timeout=1).execute("SELECT 1")
            return True
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL, like a crash: no graceful shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        terminate(self.process)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, database: str = "default"):
        from clickhouse_driver import Client
        return Client("127.0.0.1", port=self.tcp_port, database=database)


def new_server(root: pathlib.Path, extra_config: str = "") -> ClickHouseServer:
    server = ClickHouseServer(path=root, tcp_port=free_port(), http_port=free_port(),
                              interserver_port=free_port(), extra_config=extra_config)
    server.start()
    return server


ZOOKEEPER_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


@dataclasses.dataclass
class ZooKeeper:
    """A standalone ZooKeeper (Debian's zookeeper package) on an ephemeral loopback port."""

    path: pathlib.Path
    port: int
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        if not os.path.exists("/usr/share/java/zookeeper.jar") or not shutil.which("java"):
            raise RuntimeError("ZooKeeper is missing: install Debian's zookeeper (and a java runtime)")
        (self.path / "data").mkdir(parents=True, exist_ok=True)
        (self.path / "zoo.cfg").write_text(
            f"tickTime=2000\ndataDir={self.path}/data\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n")
        log = open(self.path / "zookeeper.log", "ab")
        self.process = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", ZOOKEEPER_CLASSPATH, "-Dzookeeper.log.dir=" + str(self.path),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.path / "zoo.cfg")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.process.returncode}; see {self.path}")
            if self.serving():
                return
            time.sleep(0.2)
        raise RuntimeError(f"ZooKeeper on port {self.port} not ready after {timeout}s")

    def serving(self) -> bool:
        """A session handshake succeeds ("ruok" answers before sessions are served, and
        clickhouse-server 18.16 crashes when its first ZooKeeper connection fails)."""
        body = struct.pack(">iqiqi", 0, 0, 30000, 0, 16) + bytes(16)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(struct.pack(">i", len(body)) + body)
                answer = s.recv(64)
        except OSError:
            return False
        return len(answer) >= 20 and struct.unpack_from(">q", answer, 12)[0] != 0

    def stop(self) -> None:
        terminate(self.process)


def random_database() -> str:
    return "t_" + uuid.uuid4().hex[:12]
