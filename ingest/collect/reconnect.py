"""When to reconnect: X's back-off policy per kind of failure."""

from __future__ import annotations

# X's reconnect guidance (filtered/sampled stream docs): back off linearly for network errors
# (250 ms steps up to 16 s), exponentially for HTTP errors (from 5 s up to 320 s) and for 429
# (from one minute). Auth failures are retried slowly: the token file may be restored.
POLICIES: dict[str, tuple[str, float, float]] = {
    "network": ("linear", 0.25, 16.0),
    "http": ("exponential", 5.0, 320.0),
    "rate_limit": ("exponential", 60.0, 960.0),
    "auth": ("exponential", 60.0, 900.0),
}


class Backoff:
    """Delays before reconnecting, per kind of failure; ``reset()`` once tweets flow again."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.attempts: dict[str, int] = {}

    def next(self, kind: str) -> float:
        shape, first, cap = POLICIES[kind]
        n = self.attempts[kind] = self.attempts.get(kind, 0) + 1
        base = first * n if shape == "linear" else first * 2 ** (n - 1)
        return min(base, cap) * self.scale

    def reset(self) -> None:
        self.attempts.clear()
