"""What a build_hour job asks an executor for (Snakemake ``resources``), from its inputs' size.

Measured on 2 cores (AMD EPYC) with make bench's hours (two servers; ``tests/bench``):

- 1 %: 857 MiB of raw JSON in the hour's read window (267 MiB of intermediates). A backfill
  job (parse, then merge): 49-62 s wall; its processes together peak at 397 MB (three xz 368,
  Python 28-82), plus ~130 MB for the Snakemake process a cluster job runs in.
- 10 %: 8,553 MiB raw; the build runs ~700 s (make bench SCALE=10, hourly cron). Memory
  estimated, not measured as one job: xz of the tweets 350 MB (bench), of the users' 138 MB
  and the IDs' 42 MB 255 and 205 MB (each measured alone with ``xz -6 -T2``), Python
  ~50 MB, Snakemake ~130 MB: ~990 MB.

Memory grows with the input (xz's blocks up to 64 MiB, the parse's minute buffers), time in
proportion to it. Both are asked with a margin: a job over its memory is killed by SLURM,
and one over its time too, while a cluster's cores and shared filesystem may be slower.
"""

from __future__ import annotations

import math

# Intermediates are ~0.31 of their raw files' size (the 1 % hour: 267 of 857 MiB).
INTERMEDIATES_PER_RAW = 0.31
# The 1 % job needs ~530 MB, the 10 % one ~990 MB: 480 MB + 0.06 MB per raw MiB; asked: +25 %.
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
