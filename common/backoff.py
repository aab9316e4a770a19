"""The one retry schedule: exponential backoff with jitter, for every reconnect and retry loop (Kubernetes
watches, collectors, the peer service, storage). Jitter keeps a fleet of relays or collectors that lost the
same server from coming back in lockstep."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """`next_delay()` doubles from `initial` up to `maximum` (each delay jittered by ±`jitter`);
    `reset()` after a success."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.2
    current: float = field(init=False, default=0.0)

    def next_delay(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.current * 2, self.maximum)
        return self.current * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self.current = 0.0
