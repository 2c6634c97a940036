"""Parse DAG files from a dags folder once, and again only when a file changes."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DagNotFound(LookupError):
    """No file in the dags folder defines the DAG (the message names files that failed to import)."""

    @classmethod
    def in_folder(cls, dag_id: str, folder: Path, import_errors: dict[str, str]) -> DagNotFound:
        detail = "".join(f"\n  {path}: {error.strip().splitlines()[-1]}" for path, error in import_errors.items())
        suffix = f"; files that failed to import:{detail}" if detail else ""
        return cls(f"DAG {dag_id!r} is not in the dags folder {folder}{suffix}")


@dataclass
class _ParsedFile:
    mtime_ns: int
    dags: dict[str, Any] = field(default_factory=dict)
    import_error: str | None = None


class DagLoader:
    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        # As Airflow does: DAG files import their helpers (operators, triggers) from the dags
        # folder, and the triggerer imports a trigger's classpath from there too.
        if str(self.folder) not in sys.path:
            sys.path.insert(0, str(self.folder))
        self._files: dict[Path, _ParsedFile] = {}
        self._lock = threading.Lock()

    def get_dag(self, dag_id: str) -> Any:
        """The DAG object, with its real callables, as its file defines it now."""
        with self._lock:
            self._refresh()
            for parsed in self._files.values():
                if dag_id in parsed.dags:
                    return parsed.dags[dag_id]
            errors = {str(path): p.import_error for path, p in self._files.items() if p.import_error}
            raise DagNotFound.in_folder(dag_id, self.folder, errors)

    def all_dags(self) -> dict[str, Any]:
        """Every DAG the folder defines now, by dag_id (files that fail to import define none)."""
        with self._lock:
            self._refresh()
            return {dag_id: dag for parsed in self._files.values() for dag_id, dag in parsed.dags.items()}

    def import_errors(self) -> dict[str, str]:
        """File -> error of the files that failed to import at the last refresh."""
        with self._lock:
            return {str(path): p.import_error for path, p in self._files.items() if p.import_error}

    def _refresh(self) -> None:
        current = {path: path.stat().st_mtime_ns for path in sorted(self.folder.rglob("*.py"))}
        for path in self._files.keys() - current.keys():
            del self._files[path]
        for path, mtime_ns in current.items():
            known = self._files.get(path)
            if known is None or known.mtime_ns != mtime_ns:
                self._files[path] = self._parse(path, mtime_ns)

    @staticmethod
    def _parse(path: Path, mtime_ns: int) -> _ParsedFile:
        if threading.current_thread() is threading.main_thread():
            # Airflow bounds the import itself here (core.dagbag_import_timeout, with SIGALRM).
            return _parse_file(path, mtime_ns)
        # SIGALRM cannot reach another thread, so Airflow's bound does not apply: a file that never
        # finishes importing would hold the loader's lock, and so every DAG load, for good. The import
        # runs in a thread of its own instead, awaited as long as Airflow would allow; one that does not
        # return is left running (a thread cannot be stopped) and the file is an import error until it
        # changes.
        from airflow.settings import get_dagbag_import_timeout

        timeout = get_dagbag_import_timeout(str(path))
        parsed: Future[_ParsedFile] = Future()

        def parse() -> None:
            try:
                parsed.set_result(_parse_file(path, mtime_ns))
            except BaseException as err:
                parsed.set_exception(err)

        # A daemon thread: a worker must be able to exit while an import hangs.
        threading.Thread(target=parse, name=f"dag-import:{path.name}", daemon=True).start()
        try:
            return parsed.result(timeout if timeout > 0 else None)
        except FutureTimeout:
            return _ParsedFile(
                mtime_ns=mtime_ns,
                import_error=f"DagBag import timeout for {path} after {timeout}s: its import did not return "
                "(core.dagbag_import_timeout)",
            )


def _parse_file(path: Path, mtime_ns: int) -> _ParsedFile:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path), safe_mode=False)
    error = next(iter(bag.import_errors.values()), None)
    return _ParsedFile(mtime_ns=mtime_ns, dags=dict(bag.dags), import_error=error)
