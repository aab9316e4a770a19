"""A connection probe run inside a lab pod: opens a TCP connection to HOST PORT every INTERVAL seconds
without waiting for the previous ones (non-blocking connects, each given TIMEOUT seconds), until a line
arrives on stdin; then prints one JSON line {"ok": n, "refused": n, "timeout": n}.

    python connect_probe.py 10.0.0.5 6379 0.01 1.0
"""

import errno
import json
import select
import socket
import sys
import time


def main() -> None:
    host, port, interval, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    counts = {"ok": 0, "refused": 0, "timeout": 0}
    pending: dict[socket.socket, float] = {}   # connecting socket -> deadline
    next_at = time.monotonic()
    stopping = False
    while not stopping or pending:
        now = time.monotonic()
        if not stopping and now >= next_at:
            s = socket.socket()
            s.setblocking(False)
            if s.connect_ex((host, port)) not in (0, errno.EINPROGRESS):
                counts["refused"] += 1
                s.close()
            else:
                pending[s] = now + timeout
            next_at += interval
        wait = max(0.0, min([next_at - now] + [d - now for d in pending.values()]))
        readable, writable, _ = select.select([sys.stdin] if not stopping else [], list(pending), [], wait)
        if readable:
            stopping = True   # finish what is in flight, start nothing new
        for s in writable:
            del pending[s]
            counts["ok" if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 else "refused"] += 1
            s.close()
        now = time.monotonic()
        for s in [s for s, deadline in pending.items() if deadline <= now]:
            del pending[s]
            counts["timeout"] += 1
            s.close()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
