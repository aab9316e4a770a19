"""Helpers to consume gRPC response streams from tests."""

import queue
import threading

import grpc

from lab.testbed.wait import wait_for

BOUND = 5.0  # seconds a followed flow may take to arrive (generous: CI runs other jobs alongside)


def reader(call) -> queue.Queue:
    """Drains a response stream into a queue from a thread; None marks the end."""
    q: queue.Queue = queue.Queue()

    def run():
        try:
            for r in call:
                q.put(r)
        except grpc.RpcError as err:
            q.put(err)
        q.put(None)

    threading.Thread(target=run, daemon=True).start()
    return q


def take(q: queue.Queue, n: int) -> list:
    return [q.get(timeout=BOUND) for _ in range(n)]


def wait_for_followers(observer, n: int = 1) -> None:
    """A stream sees every flow published once it counts as a follower; wait until it does."""
    wait_for(lambda: observer.followers >= n, BOUND, f"{n} follower(s) counted", interval=0.01)
