"""Timing on a shared machine: candidates run in turn (round robin) so load from other processes
falls on all of them alike; the best round counts, in CPU time (what Lambda's single vCPU
would spend) and in wall time."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Timing:
    cpu_ms: float  # best process CPU time (all threads)
    wall_ms: float  # best wall time
    runs: int

    def as_dict(self) -> dict:
        return {"cpu_ms": round(self.cpu_ms, 2), "wall_ms": round(self.wall_ms, 2), "runs": self.runs}


def best_of(repeat: int, candidates: dict) -> dict[str, Timing]:
    for func in candidates.values():
        func()  # warm up: imports, caches, thread pools
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    wall: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, func in candidates.items():
            c, w = time.process_time(), time.perf_counter()
            func()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {name: Timing(min(cpu[name]) * 1000, min(wall[name]) * 1000, repeat) for name in candidates}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(len(ordered), rank) - 1]
