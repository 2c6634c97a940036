"""Security: TLS to Temporal with the settings a deployment uses, and secrets that stay out of logs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import trustme
from temporalio.client import Client

from infra.temporal import start_dag_run
from schemas.runs import DagRunRequest, RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import eventually, unique
from tests.harness import LOGICAL_DATE
from tests.object_store import moto_s3
from tests.processes import WorkerProcess, settings_environment
from tests.servers import TansuBroker, TemporalDevServer
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


def uploaded_objects(s3: dict[str, str], bucket: str) -> str:
    """Every object of ``bucket``, as text."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3["AWS_ENDPOINT_URL"],
        region_name=s3["AWS_DEFAULT_REGION"],
        aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return "".join(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode(errors="replace") for key in keys)


async def test_connection_secrets_stay_out_of_logs_task_logs_and_histories(
    worker_settings: Settings,
    temporal_client: Client,
    tansu: TansuBroker,
    worker_processes: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """A worker and a bridge whose every connection carries a secret: the Temporal API key and client
    key (mutual TLS), the S3 secret key (task logs in a local S3), each used; the SASL password (the broker
    offers no SASL mechanism, so each publish and each fetch fails, and is logged)."""
    ca = trustme.CA()
    credentials = issue_credentials(ca, tmp_path / "tls", "dagbridge-worker")
    secrets = {
        "api key": f"api-key-{uuid.uuid4().hex}",
        "SASL password": f"sasl-{uuid.uuid4().hex}",
        "S3 secret key": f"s3-{uuid.uuid4().hex}",
        "TLS private key": "".join(credentials.key.read_text().splitlines()[1:-1]),  # its base64 body
    }
    queue = unique("secrets")
    with (
        moto_s3(tmp_path, "task-logs", secret_access_key=secrets["S3 secret key"]) as s3,
        TemporaryDirectory() as staging_dir,
    ):
        staging = Path(staging_dir)
        environment = {**s3, "TMPDIR": str(staging)}
        async with tls_proxy(ca, worker_settings.temporal_address, client_certificates=True) as address:
            settings = worker_settings.model_copy(
                update={
                    "task_queue": queue,
                    "temporal_address": address,
                    "temporal_tls_ca_path": credentials.ca,
                    "temporal_tls_cert_path": credentials.cert,
                    "temporal_tls_key_path": credentials.key,
                    "temporal_api_key": secrets["api key"],
                    "kafka_bootstrap": tansu.bootstrap,
                    "kafka_security_protocol": "SASL_PLAINTEXT",
                    "kafka_sasl_username": "dagbridge",
                    "kafka_sasl_password": secrets["SASL password"],
                    "logs_base": "s3://task-logs/secrets",
                    "trigger_topic": unique("secret-triggers"),
                }
            )
            worker_log, bridge_log = tmp_path / "worker.log", tmp_path / "bridge.log"
            worker_processes.append(WorkerProcess(settings, worker_log, env=environment))
            worker_processes.append(WorkerProcess(settings, bridge_log, command="bridge", env=environment))
            request = DagRunRequest(
                dag_id="one_task",
                run_id=unique("secrets"),
                logical_date=LOGICAL_DATE,
                options=RunOptions(default_task_queue=queue, task_heartbeat_timeout_seconds=5),
            )
            handle = await start_dag_run(temporal_client, request, queue)

            async def logged(path: Path, line: str) -> None:
                assert path.exists() and line in path.read_text(errors="replace"), f"{path.name}: no {line!r} yet"

            # The try ran (over TLS; its log went to S3) and its task event is held back; the bridge
            # cannot reach Kafka.
            await eventually(lambda: logged(worker_log, "held back: cannot publish it"), timeout=120)
            await eventually(lambda: logged(bridge_log, "cannot start the DLQ producer"), timeout=60)
            await handle.terminate("the secrets test is over")
            # Off the event loop: the workers reach Temporal through the proxy on it while they stop.
            await asyncio.gather(*(asyncio.to_thread(process.terminate) for process in worker_processes))
        task_logs = uploaded_objects(s3, "task-logs")
        places = {
            "worker log": worker_log.read_text(errors="replace"),
            "bridge log": bridge_log.read_text(errors="replace"),
            "task logs": task_logs + "".join(path.read_text(errors="replace") for path in staging.rglob("*.log")),
            # Raw protobuf: payloads appear as their own bytes (its JSON form would hold them in base64).
            "run history": b"".join(
                event.SerializeToString() for event in (await handle.fetch_history()).events
            ).decode(errors="replace"),
        }
    assert "dagbridge: only try 1" in places["task logs"], "the try's log reached S3"
    assert request.run_id in places["run history"], "payloads are searched as text"
    leaks = [(secret, place) for secret, value in secrets.items() for place, text in places.items() if value in text]
    assert not leaks, leaks
