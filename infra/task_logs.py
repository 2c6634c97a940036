"""Where task-try logs are kept: a local folder, or an object store (``s3://``, ``gs://``...) via fsspec.

A try always writes to a local file while it runs, so a worker killed mid-try leaves what the try
wrote so far on its disk. With a local base that file is the log itself; with an object store it
is a staged copy, uploaded whole when the try (or the poke of a reschedule-mode sensor) ends.
Object stores cannot append: before a later poke of the same try writes, the uploaded log is
fetched back into the staging file, so all pokes of one try end up in one attempt file.
"""

from __future__ import annotations

from pathlib import Path

from fsspec.core import url_to_fs

from schemas.ids import parse_task_log_attempt, task_log_folder, task_log_path


class TaskLogNotFound(LookupError):
    """No log is stored for that task instance or try."""


class TaskLogStore:
    """The logs base (``DAGBRIDGE_LOGS_BASE``) and the Airflow layout below it."""

    def __init__(self, base: str, staging: Path | None = None) -> None:
        self.remote = "://" in base and not base.startswith("file://")
        # What the worker's metrics call this store: "file", or the object store's URL scheme.
        self.scheme = base.split("://", 1)[0] if self.remote else "file"
        self._base = base.rstrip("/") if self.remote else str(Path(base.removeprefix("file://")).resolve())
        self._fs, self._root = url_to_fs(self._base)
        self._staging = staging

    def location(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
        """The log's full path or URL, as task events report it."""
        return f"{self._base}/{task_log_path(dag_id, run_id, task_id, map_index, try_number)}"

    def local_file(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> Path:
        """The file a running try appends to, its folder created.

        Raises ``OSError`` when the folder cannot be created; with an object store, whatever
        the store raises when an earlier poke's log cannot be fetched back.
        """
        relative = task_log_path(dag_id, run_id, task_id, map_index, try_number)
        if not self.remote:
            path = Path(self._base, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        assert self._staging is not None, "a store with an object-store base needs a staging folder to write"
        path = self._staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        remote = f"{self._root}/{relative}"
        if not path.exists() and self._fs.exists(remote):
            self._fs.get_file(remote, str(path))
        return path

    def upload(self, local: Path, dag_id: str, run_id: str, task_id: str, map_index: int, *, try_number: int) -> None:
        """Copy a staged log to the object store (nothing to do for a local base); raises what the store raises."""
        if self.remote:
            relative = task_log_path(dag_id, run_id, task_id, map_index, try_number)
            self._fs.put_file(str(local), f"{self._root}/{relative}")

    def discard_staged(self, local: Path) -> None:
        """Remove a staged log once it is uploaded; a local base's log is the log itself and stays."""
        if self.remote and self._staging is not None:
            local.unlink(missing_ok=True)

    def attempts(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[int]:
        """Try numbers that have a log, in order."""
        folder = "/".join([self._root, *task_log_folder(dag_id, run_id, task_id, map_index)])
        try:
            names = self._fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return sorted(n for name in names if (n := parse_task_log_attempt(name.rstrip("/").rsplit("/", 1)[-1])))

    def read(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, *, offset: int = 0
    ) -> bytes:
        """The log from byte ``offset`` on; raises ``TaskLogNotFound`` when there is none."""
        path = f"{self._root}/{task_log_path(dag_id, run_id, task_id, map_index, try_number)}"
        try:
            with self._fs.open(path, "rb") as log:
                log.seek(offset)
                return log.read()
        except FileNotFoundError:
            raise TaskLogNotFound(self.location(dag_id, run_id, task_id, map_index, try_number)) from None
