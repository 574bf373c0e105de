"""Run a command and measure it: wall and CPU seconds, peak RSS of its biggest process.

Each measured command runs under a small wrapper process, so ``RUSAGE_CHILDREN`` in the
wrapper covers exactly that command's process tree: CPU is the sum over every process of the
tree (all are waited for), and ``ru_maxrss`` is the peak RSS of the single biggest process
(Linux keeps the max over waited-for descendants, not a sum). An optional sampler polls the
tree every ``interval`` seconds for a per-kind picture (parse jobs, hourly job, xz,
Snakemake itself): peak RSS per kind and when each kind ran. With ``job_kind``, it also sums
the RSS of each job's processes at every instant (a job: one process under the run's top
process, e.g. the shell of one Snakemake job, and all its descendants).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# The wrapper: run argv, wait, report the children's rusage as JSON on fd 3's file.
_WRAPPER = r"""
import json, os, resource, subprocess, sys, time
out = sys.argv[1]
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"rc": rc, "wall": wall, "user": ru.ru_utime, "sys": ru.ru_stime,
               "maxrss_kb": ru.ru_maxrss}, f)
sys.exit(rc)
"""


@dataclass
class Kind:
    peak_rss_mb: float = 0.0
    first: float | None = None  # seconds after start when first seen
    last: float | None = None
    pids: set[int] = field(default_factory=set)
    cpu_seen: dict[int, float] = field(default_factory=dict)  # last user+sys seen per pid

    def to_json(self) -> dict:
        return {
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "first_s": None if self.first is None else round(self.first, 2),
            "last_s": None if self.last is None else round(self.last, 2),
            "processes": len(self.pids),
            "cpu_s_sampled": round(sum(self.cpu_seen.values()), 2),
        }


@dataclass
class Job:
    """One job's process tree: the largest sum of its processes' RSS at one sampling instant."""

    peak_rss_mb: float = 0.0
    peak_parts: dict[str, float] = field(default_factory=dict)  # per kind, at that instant
    first: float | None = None
    last: float | None = None

    def to_json(self) -> dict:
        return {
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_parts_mb": {k: round(v, 1) for k, v in sorted(self.peak_parts.items())},
            "first_s": None if self.first is None else round(self.first, 2),
            "last_s": None if self.last is None else round(self.last, 2),
        }


@dataclass
class Result:
    label: str
    wall: float
    user: float
    sys: float
    peak_rss_mb: float
    rc: int
    kinds: dict[str, Kind] = field(default_factory=dict)
    machine_busy: float = 0.0  # CPU seconds the whole machine was busy meanwhile (/proc/stat)
    jobs: dict[int, Job] = field(default_factory=dict)  # by the job's top pid (job_kind only)

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def other_cpu(self) -> float:
        """CPU seconds used meanwhile by processes outside the measured tree (noise)."""
        return max(0.0, self.machine_busy - self.cpu)

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "wall_s": round(self.wall, 2),
            "cpu_s": round(self.cpu, 2),
            "user_s": round(self.user, 2),
            "sys_s": round(self.sys, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "rc": self.rc,
            "other_cpu_s": round(self.other_cpu, 2),
            "kinds": {k: v.to_json() for k, v in sorted(self.kinds.items())},
            **({"jobs": [j.to_json() for j in self.jobs.values()]} if self.jobs else {}),
        }


def busy_seconds() -> float:
    """CPU seconds all cores have been busy since boot (user, nice, system, irq, steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def classify(cmdline: list[str], name: str) -> str:
    """Which part of the pipeline a process is, from its command line."""
    joined = " ".join(cmdline)
    if name in ("xz", "jq") or (cmdline and os.path.basename(cmdline[0]) in ("xz", "jq")):
        return os.path.basename(cmdline[0]) if cmdline else name
    if "ingest.hours.minutes" in joined:
        return "parse_minute"
    if "build_hour" in joined:
        return "build_hour"
    if "seed_baseline" in joined:
        return "baseline_python"
    if "snakemake" in joined:
        return "snakemake"
    if name in ("sh", "bash"):
        return "shell"
    return "other"


class Sampler(threading.Thread):
    def __init__(self, root_pid: int, interval: float, job_kind: str | None = None) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.job_kind = job_kind  # sum RSS per job for the jobs that run a process of this kind
        self.kinds: dict[str, Kind] = {}
        self.jobs: dict[int, Job] = {}
        self.stop = threading.Event()
        self.t0 = time.perf_counter()
        self._names: dict[int, str] = {}

    def run(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            now = time.perf_counter() - self.t0
            try:
                procs = root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            seen: list[tuple[int, int, str, float]] = []  # pid, parent pid, kind, RSS MB
            for p in procs:
                try:
                    kind = self._names.get(p.pid)
                    if kind is None:
                        kind = classify(p.cmdline(), p.name())
                        if kind == "other" and now < 0.05:
                            continue  # cmdline may not be set yet right after fork
                        self._names[p.pid] = kind
                    rss = p.memory_info().rss / 2**20
                    cpu = p.cpu_times()
                    ppid = p.ppid() if self.job_kind else 0
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                k = self.kinds.setdefault(kind, Kind())
                k.peak_rss_mb = max(k.peak_rss_mb, rss)
                k.first = now if k.first is None else k.first
                k.last = now
                k.pids.add(p.pid)
                k.cpu_seen[p.pid] = cpu.user + cpu.system
                seen.append((p.pid, ppid, kind, rss))
            if self.job_kind:
                self._sum_jobs(seen, now)
            self.stop.wait(self.interval)

    def _sum_jobs(self, seen: list[tuple[int, int, str, float]], now: float) -> None:
        parent = {pid: ppid for pid, ppid, _, _ in seen}
        tops = {pid for pid, ppid, _, _ in seen if ppid == self.root_pid}  # e.g. Snakemake
        parts: dict[int, dict[str, float]] = {}  # job's top pid -> kind -> RSS now
        for pid, _, kind, rss in seen:
            head = pid
            while head in parent and parent[head] not in tops:
                head = parent[head]
            if head not in parent:  # a top process itself, or its parent already gone
                continue
            job = parts.setdefault(head, {})
            job[kind] = job.get(kind, 0.0) + rss
        for head, kinds in parts.items():
            if self.job_kind not in kinds:
                continue
            job = self.jobs.setdefault(head, Job(first=now))
            job.last = now
            if sum(kinds.values()) > job.peak_rss_mb:
                job.peak_rss_mb = sum(kinds.values())
                job.peak_parts = kinds


def run(
    label: str,
    cmd: list[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    sample: float | None = 0.1,
    stdout=None,
    stderr=None,
    check: bool = True,
    job_kind: str | None = None,
) -> Result:
    """Run ``cmd`` under the wrapper and measure it (``sample``: sampler interval or None;
    ``job_kind``: also the RSS summed per job of that kind, see ``Sampler``)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        report = tmp.name
    busy0 = busy_seconds()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, report, *map(str, cmd)],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        sampler = None
        if sample:
            sampler = Sampler(proc.pid, sample, job_kind)
            sampler.start()
        proc.wait()
        if sampler:
            sampler.stop.set()
            sampler.join()
        data = json.loads(Path(report).read_text()) if os.path.getsize(report) else None
    finally:
        os.unlink(report)
    if data is None:
        raise RuntimeError(f"{label}: the measuring wrapper died (rc {proc.returncode})")
    result = Result(
        label,
        data["wall"],
        data["user"],
        data["sys"],
        data["maxrss_kb"] / 1024,
        data["rc"],
        sampler.kinds if sampler else {},
        busy_seconds() - busy0,
        sampler.jobs if sampler else {},
    )
    if check and result.rc != 0:
        raise RuntimeError(f"{label}: {' '.join(map(str, cmd))} exited with {result.rc}")
    return result
