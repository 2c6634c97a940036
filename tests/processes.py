"""dagbridge services as real subprocesses, configured the way a deployment would: by environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from schemas.settings import Settings


def settings_environment(settings: Settings) -> dict[str, str]:
    """The ``DAGBRIDGE_*`` variables that reproduce ``settings`` in another process."""
    return {
        f"DAGBRIDGE_{name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


class WorkerProcess:
    """``dagbridge worker`` in its own process group, so a kill takes its task processes too."""

    def __init__(
        self, settings: Settings, log_path: Path, *, command: str = "worker", env: Mapping[str, str] | None = None
    ) -> None:
        """``dagbridge <command>`` (``worker`` or ``bridge``) configured by ``settings``, plus ``env``."""
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dagbridge.cli", command],
            env={**os.environ, **settings_environment(settings), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        if not self._log.closed:
            self._log.close()


class BridgeProcess:
    """``dagbridge bridge`` as its own process, configured by environment, to be killed like a container."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dagbridge.cli", "bridge"],
            env={**os.environ, **settings_environment(settings)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def terminate(self, timeout: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()
