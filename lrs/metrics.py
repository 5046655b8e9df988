"""Process metrics in the Prometheus text exposition format (served on /metrics).

A tiny registry of our own: counters and fixed-bucket histograms are all Spor needs, and this
keeps the hot path to a dict lookup and an add.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters, histograms and gauges (callables read at scrape time)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.help: dict[str, tuple[str, str]] = {}
        self.hist: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
        self.gauges: dict[str, Callable[[], float]] = {}
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self.help[name] = (kind, text)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += value

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        h = self.hist.get(key)
        if h is None:
            # bucket counts..., +Inf count, sum
            h = self.hist[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        h[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        h[-1] += value

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read

    def set(self, name: str, value: float, **labels: str) -> None:
        """A labelled gauge set from outside (e.g. projection lag sampled periodically)."""
        self.values[(name, tuple(sorted(labels.items())))] = value

    def snapshot(self) -> dict[str, Any]:
        """This process's figures as plain data (lrs.metrics_shared shares them between the
        processes of one server); the gauges read now."""
        return {
            "help": self.help,
            "counters": [[n, labels, v] for (n, labels), v in self.counters.items()],
            "hist": [[n, labels, h] for (n, labels), h in self.hist.items()],
            "values": [[n, labels, v] for (n, labels), v in self.values.items()],
            "gauges": [[n, float(read())] for n, read in self.gauges.items()],
        }

    def render(self) -> str:
        lines: list[str] = []

        def header(name: str) -> None:
            if name in self.help:
                kind, text = self.help[name]
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")

        def fmt(labels: tuple[tuple[str, str], ...], extra: str = "") -> str:
            parts = [f'{k}="{v}"' for k, v in labels]
            if extra:
                parts.append(extra)
            return "{" + ",".join(parts) + "}" if parts else ""

        for name in sorted({k[0] for k in self.counters}):
            header(name)
            for (n, labels), v in sorted(self.counters.items()):
                if n == name:
                    lines.append(f"{name}{fmt(labels)} {v}")
        for name in sorted({k[0] for k in self.hist}):
            header(name)
            for (n, labels), h in sorted(self.hist.items()):
                if n != name:
                    continue
                cumulative = 0.0
                for bound, count in zip(LATENCY_BUCKETS, h, strict=False):
                    cumulative += count
                    le = fmt(labels, f'le="{bound}"')
                    lines.append(f"{name}_bucket{le} {cumulative}")
                cumulative += h[len(LATENCY_BUCKETS)]
                le = fmt(labels, 'le="+Inf"')
                lines.append(f"{name}_bucket{le} {cumulative}")
                lines.append(f"{name}_count{fmt(labels)} {cumulative}")
                lines.append(f"{name}_sum{fmt(labels)} {h[-1]}")
        for name in sorted({k[0] for k in self.values}):
            header(name)
            for (n, labels), v in sorted(self.values.items()):
                if n == name:
                    lines.append(f"{name}{fmt(labels)} {v}")
        for name, read in sorted(self.gauges.items()):
            header(name)
            lines.append(f"{name} {read()}")
        return "\n".join(lines) + "\n"
