"""A flowscope cluster of ClickHouse servers: the server configuration (shards of replicas, ZooKeeper or
Keeper, macros and the distributed DDL queue, so `migrate()` with `?cluster=NAME` creates every table ON
CLUSTER: Distributed tables over sharded Replicated*MergeTree tables), and what a server's answer says
about its cluster's shards (which one a failed query could not reach, which ones are up).

deploy/clickhouse/ holds files rendered by this module (`python -m storage.cluster`) and explains them;
docs/scaling.md says when to use a cluster and how to size it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Iterable
from xml.sax.saxutils import escape

from storage.backend import quote

# Server error codes of a query or insert that could not reach a shard: SOCKET_TIMEOUT, NETWORK_ERROR,
# ALL_CONNECTION_TRIES_FAILED (18.16 and current servers alike).
UNREACHABLE_CODES = frozenset({209, 210, 279})
_ADDRESS = re.compile(r"\(([^()\s]+:\d+)\)")  # "Connection refused (10.0.0.2:9000)"
_REASON = re.compile(r"NetException: ([^(.,]+?) \(")


@dataclasses.dataclass(frozen=True)
class Replica:
    host: str
    port: int = 9000


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    name: str
    shards: tuple[tuple[Replica, ...], ...]  # shards, each a tuple of replicas
    zookeeper: tuple[Replica, ...]  # ZooKeeper/Keeper nodes (port 2181 usually)
    user: str = "default"
    password: str = ""


def server_config(spec: ClusterSpec, shard: int, replica: int) -> str:
    """The config.d fragment for the server that is replica `replica` (1-based) of shard `shard`."""
    shards = []
    for replicas in spec.shards:
        nodes = "".join(
            f"<replica><host>{escape(r.host)}</host><port>{r.port}</port>"
            f"<user>{escape(spec.user)}</user><password>{escape(spec.password)}</password></replica>"
            for r in replicas)
        shards.append(f"<shard><internal_replication>true</internal_replication>{nodes}</shard>")
    zk = "".join(f"<node><host>{escape(z.host)}</host><port>{z.port}</port></node>" for z in spec.zookeeper)
    return (f"<remote_servers><{spec.name}>{''.join(shards)}</{spec.name}></remote_servers>\n"
            f"<zookeeper>{zk}<session_timeout_ms>30000</session_timeout_ms></zookeeper>\n"
            f"<macros><shard>{shard:02d}</shard><replica>{escape(spec.shards[shard - 1][replica - 1].host)}"
            f"-{spec.shards[shard - 1][replica - 1].port}</replica></macros>\n"
            "<distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n")


def unreachable(message: str, shards: Iterable[tuple[int, str, str, int]]) -> tuple[list[str], str]:
    """The shards a server's error `message` says it could not reach, as "shard N (host:port)", and
    why (e.g. "Connection refused"). `shards`: (shard_num, host_name, host_address, port) rows of
    system.clusters."""
    addresses = set(_ADDRESS.findall(message))
    down = sorted({(n, f"{name}:{port}") for n, name, address, port in shards
                   if {f"{name}:{port}", f"{address}:{port}"} & addresses})
    reason = _REASON.search(message)
    return [f"shard {n} ({where})" for n, where in down], reason.group(1) if reason else ""


def shard_status(backend, cluster: str) -> dict[int, str]:
    """Each shard of `cluster` (by number) as "up" or "unreachable", asked through the connected
    server: every reachable server reports its own `shard` macro (server_config writes it)."""
    shards = {n for (n,) in backend.rows(
        f"SELECT DISTINCT shard_num FROM system.clusters WHERE cluster = {quote(cluster)}")}
    up = {int(s) for (s,) in backend.rows(
        f"SELECT substitution FROM cluster({quote(cluster)}, system, macros) WHERE macro = 'shard' "
        "SETTINGS skip_unavailable_shards = 1")}
    return {n: "up" if n in up else "unreachable" for n in sorted(shards)}


def main() -> None:
    parser = argparse.ArgumentParser(description="render a flowscope ClickHouse cluster config fragment")
    parser.add_argument("--name", default="flowscope")
    parser.add_argument("--shard", action="append", required=True,
                        help="host:port[,host:port...] of one shard's replicas (repeat per shard)")
    parser.add_argument("--zookeeper", action="append", required=True, help="host:port")
    parser.add_argument("--this", required=True, help="shard,replica (1-based) of the server rendered")
    args = parser.parse_args()

    def replica(text: str) -> Replica:
        host, _, port = text.rpartition(":")
        return Replica(host, int(port))

    spec = ClusterSpec(args.name, tuple(tuple(replica(r) for r in s.split(",")) for s in args.shard),
                       tuple(replica(z) for z in args.zookeeper))
    shard, rep = (int(x) for x in args.this.split(","))
    print("<yandex>\n" + server_config(spec, shard, rep) + "</yandex>")


if __name__ == "__main__":
    main()
