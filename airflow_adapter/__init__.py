"""Every use of Airflow internals in one place: what dagbridge patches, hooks or builds by hand.

``install()`` puts the process-wide patches in place (the workflow clock, sliced expansion of
mapped tasks, relatives and priority weights computed once per DAG version); ``check()``
verifies that every internal the adapter relies on still exists with the signature it was
written against. The worker runs ``install()`` (which checks first) before
it serves anything, so an Airflow upgrade that moved one of them fails at start with the name and
the installed version, not later as a nondeterministic replay or a missing metric.

Imports Airflow; imports of the project's own packages: ``schemas`` only.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_adapter.contract import EXPECTATIONS, problems
from airflow_adapter.errors import WRITTEN_AGAINST, AirflowMismatch

__all__ = ["WRITTEN_AGAINST", "AirflowMismatch", "check", "install", "require_installed"]


class _Installation:
    """What ``install()`` did in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        # The functions install() replaced, by dotted name: check() verifies these, not dagbridge's own.
        self.originals: dict[str, Any] = {}


_installation = _Installation()


def check() -> None:
    """Raise ``AirflowMismatch`` naming every internal that is missing or changed shape."""
    found = problems(EXPECTATIONS, _installation.originals)
    if found:
        raise AirflowMismatch("\n  " + "\n  ".join(found))


def install() -> None:
    """Check, then install the process-wide patches. Idempotent; raises ``AirflowMismatch``."""
    with _installation.lock:
        if _installation.done:
            return
        check()
        from airflow_adapter.clock import install_workflow_clock
        from airflow_adapter.contract import UTCNOW
        from airflow_adapter.dag_relations import install_dag_relations
        from airflow_adapter.expansion import install_sliced_expansion

        _installation.originals[UTCNOW] = install_workflow_clock()
        _installation.originals.update(install_sliced_expansion())
        _installation.originals.update(install_dag_relations())
        _installation.done = True


def require_installed() -> None:
    """Raise ``RuntimeError`` unless ``install()`` ran in this process: workflow code relies on it."""
    if not _installation.done:
        raise RuntimeError("airflow_adapter.install() must run before a DAG run is scheduled in this process")
