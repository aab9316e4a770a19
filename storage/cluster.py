"""ClickHouse server configuration for a flowscope cluster: shards of replicas, ZooKeeper (or Keeper),
macros and the distributed DDL queue, so `migrate()` with `?cluster=NAME` creates every table ON CLUSTER
(Distributed tables over sharded Replicated*MergeTree tables).

deploy/clickhouse/ holds files rendered by this module (`python -m storage.cluster`) and explains them.
"""

from __future__ import annotations

import argparse
import dataclasses
from xml.sax.saxutils import escape


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
