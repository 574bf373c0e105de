"""What a build_hour job asks an executor for (Snakemake ``resources``), from its inputs' size.

Measured on 2 cores (AMD EPYC) with make bench's hours (two servers; ``tests/bench``):

- 1 %: 857 MiB of raw JSON in the hour's read window (267 MiB of intermediates). A backfill
  job (one core: parse, then merge) runs 64-89 s; its processes together (the script and its
  three xz) peak at 205 MB (make bench-day: python 51, xz 154), plus ~140 MB for the
  Snakemake process a cluster job runs in.
- 10 %: 8,553 MiB raw; the build runs ~700 s (make bench SCALE=10, hourly cron). Memory
  estimated, not measured as one job: the tweets' xz with one thread and two 64 MiB blocks
  ~230 MB, the IDs' and users' ~30 MB, Python ~50 MB, Snakemake ~140 MB: ~450 MB.

Memory grows with the input (xz's blocks up to 64 MiB, the parse's minute buffers), time in
proportion to it. Both are asked with a margin: a job over its memory is killed by SLURM,
and one over its time too, while a cluster's cores and shared filesystem may be slower.
"""

from __future__ import annotations

import math

# Intermediates are ~0.31 of their raw files' size (the 1 % hour: 267 of 857 MiB).
INTERMEDIATES_PER_RAW = 0.31
# Asked: 600 MB + 0.075 MB per raw MiB (1 %: 664 MB, 10 %: 1,240 MB), sized for the two-core
# jobs measured before (530 and ~990 MB with Snakemake's); one-core jobs need ~350 and ~450 MB,
# and the margin stays until 10 % is measured as one job: a job over its memory is killed.
BASE_MB = 600
MB_PER_RAW_MIB = 0.075
# ~0.08 s per raw MiB on 2 cores (1 %: 70 s, 10 %: 700 s); asked: 3x, at least 10 minutes.
SECONDS_PER_RAW_MIB = 0.082
RUNTIME_MARGIN = 3
MIN_RUNTIME_MIN = 10


def raw_mib(input_mib: float, raw: bool) -> float:
    """The raw JSON an hour's inputs stand for: raw files (a backfill) or intermediates."""
    return input_mib if raw else input_mib / INTERMEDIATES_PER_RAW


def build_mem_mb(input_mib: float, raw: bool) -> int:
    """Memory (MB) to ask for a build_hour job whose inputs total ``input_mib``."""
    return math.ceil(BASE_MB + MB_PER_RAW_MIB * raw_mib(input_mib, raw))


def build_runtime_min(input_mib: float, raw: bool) -> int:
    """Minutes to ask for a build_hour job whose inputs total ``input_mib``."""
    seconds = SECONDS_PER_RAW_MIB * raw_mib(input_mib, raw) * RUNTIME_MARGIN
    return max(MIN_RUNTIME_MIN, math.ceil(seconds / 60))


def job_threads(cores: int, share: float, fixed: int = 0, local: bool = True) -> int:
    """Cores for one build_hour job that holds ``share`` (0-1) of its run's input bytes.

    ``fixed`` (config ``backfill_threads``), when set, is the answer. On a cluster (``local``
    false) it is that or 1: Snakemake evaluates a job's threads twice, in the main process
    (which has no ``--cores`` under a cluster executor) to ask for the job's slot, and in the
    job (``--cores all``: the node's CPUs, not the slot's), so neither side's cores can count,
    and a job whose second answer exceeded its slot would fail to start. On one machine the
    run's ``cores`` are shared in proportion to the input: a run of one hour gives it every
    core (to parse its minute files and for the tweets' xz), a run of many hours one core
    each (side by side they keep every core busy, each job with the least memory), and a run
    of a few hours, one of them big (a day's last hour and the next hour's first minutes),
    gives the big one what the small ones leave.
    """
    if fixed:
        return fixed
    if not local:
        return 1
    return max(1, min(cores, round(cores * share)))
