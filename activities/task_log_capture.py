"""Send everything a task process writes during one try into that try's log file.

A pool process runs one try at a time, so pointing its stdout and stderr file descriptors at
the try's file captures exactly that try: Airflow's task-runner lines, the task's ``logging``
output, its prints, and the output of subprocesses it starts (they inherit the descriptors).
Concurrent tries run in other processes with descriptors of their own.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What a failed try's event carries of its traceback: the end, where the error is.
TRACEBACK_LINES = 20
TRACEBACK_CHARS = 4000


def write_streams_through() -> None:
    """Make Python's stdout and stderr write each line at once, so a killed try keeps what it printed."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


@contextmanager
def output_to(path: Path, header: str) -> Iterator[None]:
    """Point stdout and stderr (file descriptors 1 and 2) at ``path``, appending, until the block ends.

    Raises ``OSError`` when the file cannot be opened.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.write(log_fd, header.encode() + b"\n")
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            # A task may have closed or broken its streams; the descriptors are restored regardless.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log_fd):
            os.close(fd)


def error_message(error: BaseException) -> str:
    """``str(error)``, cut to ``TRACEBACK_CHARS``: an exception may carry any amount of text, and the
    try's result (a Temporal payload) and event (a Kafka record) must stay small."""
    message = str(error)
    return message if len(message) <= TRACEBACK_CHARS else f"{message[: TRACEBACK_CHARS - 3]}..."


def traceback_tail(error: BaseException) -> str:
    """The last lines of ``error``'s traceback, bounded in size for a Kafka event."""
    lines = "".join(traceback.format_exception(error)).rstrip("\n").splitlines()
    tail = "\n".join(lines[-TRACEBACK_LINES:])
    return tail[-TRACEBACK_CHARS:]
