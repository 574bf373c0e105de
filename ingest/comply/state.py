"""A comply pass's state under ``{work_dir}/comply/``: what survives a killed run.

``state.json`` (written atomically after every step) names the pass, its days and its chunks:
each a file of IDs of one type (at most ``ids_per_job``), the job that checks it once created
(id, URLs, name), whether its IDs were uploaded, and its results file once downloaded. A run
that finds the file picks up where the last one stopped: a chunk with a job polls that job,
never creates another. A job created just before a kill, before the state named it, is found
again by its name among the type's active jobs. ``last.json`` keeps the summary of the last
finished pass.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.atomic import atomic_file, atomic_write, atomic_write_json


@dataclass
class Chunk:
    type: str  # tweets or users
    file: str  # the IDs file, relative to the pass folder
    ids: int
    name: str  # the job's name at X: finds a job the state never recorded
    job: dict[str, Any] | None = None  # id, upload_url, download_url, created_at
    uploaded: bool = False
    results: str | None = None  # the results file, relative to the pass folder
    attempts: int = 0  # jobs created for it (a failed or expired one is created again)


@dataclass
class PassState:
    started: str
    days: list[str]
    chunks: list[Chunk] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PassState:
        chunks = [Chunk(**c) for c in data.get("chunks", [])]
        return cls(data["started"], list(data["days"]), chunks)


def comply_dir(work_dir: str | Path) -> Path:
    return Path(work_dir) / "comply"


def state_path(work_dir: str | Path) -> Path:
    return comply_dir(work_dir) / "state.json"


def pass_dir(work_dir: str | Path) -> Path:
    return comply_dir(work_dir) / "pass"


def load(work_dir: str | Path) -> PassState | None:
    """The unfinished pass, or None. A state file that cannot be read is an error naming it
    (a pass must not be started over while X may hold its jobs)."""
    path = state_path(work_dir)
    try:
        return PassState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path}: unreadable comply state ({e}); move it away to start over"
        ) from None


def save(work_dir: str | Path, state: PassState) -> None:
    atomic_write_json(state_path(work_dir), asdict(state))


def write_chunks(
    folder: Path, job_type: str, ids: Iterable[int], per_job: int, stamp: str
) -> list[Chunk]:
    """The distinct ``ids`` sorted (``sort -un``: a year of IDs never sits in memory) and cut
    into files of at most ``per_job`` IDs, each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"all-{job_type}.txt"
    with atomic_file(raw, durable=False) as f:
        for i in ids:
            f.write(b"%d\n" % i)
    chunks: list[Chunk] = []
    lines: list[bytes] = []

    def flush() -> None:
        n = len(chunks) + 1
        name = f"ids-{job_type}-{n:04d}.txt"
        atomic_write(folder / name, b"".join(lines))
        chunks.append(Chunk(job_type, name, len(lines), f"sampled-stream {stamp} {job_type} {n}"))
        lines.clear()

    with subprocess.Popen(
        ["sort", "-u", "-n", "-S", "100M", "-T", str(folder), str(raw)],
        stdout=subprocess.PIPE,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    ) as proc:
        for line in proc.stdout:
            lines.append(line)
            if len(lines) == per_job:  # a chunk's IDs (up to ~20 MB) in memory, no more
                flush()
    if proc.returncode:
        raise OSError(f"sort of {raw} failed (exit {proc.returncode})")
    if lines:
        flush()
    raw.unlink()
    return chunks
