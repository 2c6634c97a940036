"""Security: TLS to Temporal with the settings a deployment uses, and secrets that stay out of logs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import trustme

from schemas.settings import Settings
from tests.bridge_fixtures import unique
from tests.processes import settings_environment
from tests.servers import TemporalDevServer
from tests.tls_proxy import issue_credentials, tls_proxy


async def dagbridge(settings: Settings, *args: str) -> tuple[int, str, str]:
    """Run the ``dagbridge`` command without blocking the event loop (the TLS proxy runs on it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dagbridge.cli",
        *args,
        env={**os.environ, **settings_environment(settings)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_dagbridge_runs_a_dag_over_mutual_tls_and_says_in_one_line_when_tls_is_misconfigured(
    worker_settings: Settings, worker: None, temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    ca = trustme.CA()
    credentials = issue_credentials(ca, tmp_path / "tls", "dagbridge-cli")
    async with tls_proxy(ca, temporal_server.address, client_certificates=True) as address:
        settings = worker_settings.model_copy(
            update={
                "temporal_address": address,
                "temporal_tls_ca_path": credentials.ca,
                "temporal_tls_cert_path": credentials.cert,
                "temporal_tls_key_path": credentials.key,
            }
        )
        code, out, err = await dagbridge(settings, "run", "one_task", "--run-id", unique("over-tls"), "--json")
        assert code == 0, err
        assert json.loads(out)["state"] == "success"

        # The server's certificate is from a CA the system does not trust; the proxy wants a client certificate.
        untrusted = settings.model_copy(update={"temporal_tls": True, "temporal_tls_ca_path": None})
        anonymous = settings.model_copy(update={"temporal_tls_cert_path": None, "temporal_tls_key_path": None})
        for wrong in (untrusted, anonymous):
            code, out, err = await dagbridge(wrong, "run", "one_task", "--run-id", unique("refused"))
            assert code == os.EX_UNAVAILABLE, err
            assert err.startswith(f"dagbridge: cannot reach Temporal at {address}"), err
            assert len(err.strip().splitlines()) == 1, err
