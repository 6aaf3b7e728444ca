"""Functions a foreign job on the queue might name: each leaves a marker file if it ever runs."""

from __future__ import annotations

from pathlib import Path


def make_marker(path: str) -> str:
    Path(path).write_text("ran")
    return path


def marker_callback(job, connection, *args) -> None:
    """An RQ callback (success, failure or stopped): writes the marker named in the job's meta."""
    Path(job.meta["marker"]).write_text("callback ran")
