"""Is the machine quiet enough to measure? The load before a run, and the CPU time other
processes take while it runs, with the one rule that turns either into a warning.

No torch here: bench, tune and the asv suites' busy-machine note all judge with it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Load average per core above which a measurement is flagged as noise.
BUSY_LOAD_PER_CORE = 0.5


#: Share of all cores that other processes may take while we measure before the numbers are
#: flagged as noise (bench's and tune's footers, the asv suites' log).
BUSY_OTHERS_PCT = 15.0


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


class OtherProcessesCPU:
    """CPU time other processes took while a block ran, as % of all cores (Linux).

    The load average cannot say this: during a benchmark it counts the benchmark itself.
    /proc/stat's busy time minus this process's own time is what the neighbours took.
    """

    def __init__(self) -> None:
        self.percent: float | None = None

    @staticmethod
    def _own_ticks() -> int:
        """CPU ticks of this process, its reaped children and its live descendants (inductor's
        compile workers are subprocesses: their time is ours, not a neighbour's)."""
        stats: dict[int, list[str]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
        children: dict[int, list[int]] = {}
        for pid, fields in stats.items():
            children.setdefault(int(fields[1]), []).append(pid)
        me = os.getpid()
        total = sum(int(v) for v in stats[me][13:15])  # cutime + cstime: reaped children
        todo = [me]
        while todo:
            pid = todo.pop()
            total += int(stats[pid][11]) + int(stats[pid][12])  # utime + stime, all threads
            todo.extend(children.get(pid, []))
        return total

    @classmethod
    def _read(cls) -> tuple[int, int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            mine = cls._own_ticks()
        except (OSError, ValueError, IndexError, KeyError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        total = sum(fields[:8])
        return total, total - idle, mine

    def start(self) -> OtherProcessesCPU:
        self._start = self._read()
        return self

    def stop(self) -> float | None:
        end = self._read()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        total = end[0] - self._start[0]
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self.percent = max(0.0, 100.0 * others / total)
        return self.percent


def busy_notes(machine: dict) -> list[str]:
    """Why the numbers of a run may be noise, from its machine block: a load average above
    `BUSY_LOAD_PER_CORE` per core before measuring, or other processes above
    `BUSY_OTHERS_PCT` of the CPU while measuring."""
    notes = []
    cores = machine.get("cores") or 1
    load = machine.get("load_before")
    if load is not None and load > BUSY_LOAD_PER_CORE * cores:
        notes.append(
            f"the machine was busy before measuring (load average {load:.2f} on {cores} cores)."
        )
    others = machine.get("others_cpu_pct")
    if others is not None and others > BUSY_OTHERS_PCT:
        notes.append(
            f"other processes used {others:.0f}% of the CPU while measuring: these numbers "
            "are noise; rerun on a quiet machine."
        )
    return notes
