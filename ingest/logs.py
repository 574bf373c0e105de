"""Logging for workflow jobs and commands: one file per job, plain lines with a timestamp."""

from __future__ import annotations

import logging
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
