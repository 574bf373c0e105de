"""Logging for workflow jobs and commands: one file per job, plain lines with a timestamp."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def job_logger(name: str, log_path: str | Path | None) -> logging.Logger:
    """A logger writing to ``log_path`` (the rule's log: file) or stderr."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_path, encoding="utf-8")
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    return logger


@contextmanager
def job_failures_logged(name: str, log_path: str | Path | None) -> Iterator[logging.Logger]:
    """A workflow job's body (``scripts/``): its logger, and whatever makes it fail written to
    the job's own log file, the traceback and the cause, before it propagates to Snakemake
    (whose own log the operator may not have; the job's file is where a failure is looked up)."""
    log = job_logger(name, log_path)
    try:
        yield log
    except BaseException as e:
        log.exception("%s failed: %s: %s", name, type(e).__name__, e)
        raise
