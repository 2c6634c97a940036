"""The ``dagbridge`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from typing import Any

from schemas.runs import DagRunRequest, DagRunResult
from schemas.settings import Settings


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _aware_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a UTC offset, e.g. 2025-01-01T00:00:00+00:00")
    return value


def _run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from activities.worker import run_worker

    _run_until_signalled(lambda stop: run_worker(settings, stop))
    return 0


def run_result_json(result: DagRunResult) -> dict[str, Any]:
    return {
        "dag_id": result.dag_id,
        "run_id": result.run_id,
        "state": result.state,
        "error": result.error,
        "task_instances": {
            ti.label: {"state": ti.state, "try_number": ti.try_number, "return_value": ti.xcom.get("return_value")}
            for ti in result.task_instances
        },
    }


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.client import WorkflowFailureError

    from workflows.client import connect, run_options, start_dag_run

    now = datetime.now(tz=timezone.utc)
    logical_date = args.logical_date or now
    request = DagRunRequest(
        dag_id=args.dag_id,
        run_id=args.run_id or f"manual__{now.isoformat()}",
        logical_date=logical_date,
        conf=args.conf or {},
        options=run_options(settings),
    )

    async def main() -> dict[str, Any]:
        client = await connect(settings)
        handle = await start_dag_run(client, request, settings.task_queue)
        try:
            return run_result_json(await handle.result())
        except WorkflowFailureError as err:
            cause = err.cause
            message = getattr(cause, "message", None) or str(cause)
            return {"dag_id": request.dag_id, "run_id": request.run_id, "state": "failed", "error": message,
                    "task_instances": {}}

    output = asyncio.run(main())
    if args.json:
        print(json.dumps(output, indent=2, default=str))
    else:
        print(f"{output['dag_id']} {output['run_id']}: {output['state']}")
        if output["error"]:
            print(f"  error: {output['error']}")
        for label, ti in output["task_instances"].items():
            print(f"  {label:<40} {str(ti['state']):<16} try {ti['try_number']}")
    return 0 if output["state"] == "success" else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dagbridge", description="Run Airflow DAGs as Temporal workflows.")
    root.add_argument("--temporal-address", help="DAGBRIDGE_TEMPORAL_ADDRESS")
    root.add_argument("--task-queue", help="DAGBRIDGE_TASK_QUEUE")
    root.add_argument("--dags-folder", help="DAGBRIDGE_DAGS_FOLDER")
    commands = root.add_subparsers(dest="command", required=True)

    commands.add_parser("worker", help="run workflows and task activities").set_defaults(handler=_worker)

    run = commands.add_parser("run", help="start a DAG run directly (no Kafka), wait and print the result")
    run.add_argument("dag_id")
    run.add_argument("--conf", type=_json_object)
    run.add_argument("--run-id")
    run.add_argument("--logical-date", type=_aware_datetime)
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(handler=_run)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = {
        name: value
        for name in ("temporal_address", "task_queue", "dags_folder")
        if (value := getattr(args, name)) is not None
    }
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
