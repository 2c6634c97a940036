"""The ``dagbridge`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from infra.logs import configure_logging
from infra.reachability import ServerUnreachable
from schemas import run_attributes
from schemas.ids import dag_run_workflow_id
from schemas.runs import DagRunRequest, DagRunResult
from schemas.settings import Settings, settings_error_lines, unknown_setting_variables


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
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
    from dagbridge.worker_processes import WorkerSupervisor, process_count

    count = process_count(settings)
    if count > 1:
        # The supervisor imports no Airflow: each of its children is this command with one process.
        code = 0

        async def supervise(stop: asyncio.Event) -> None:
            nonlocal code
            code = await WorkerSupervisor(settings, count).run(stop)

        _run_until_signalled(supervise)
        return code

    from airflow_adapter import AirflowMismatch
    from dagbridge.worker import run_worker

    # Importing Airflow replaced the logging configuration with its own.
    configure_logging(settings)
    try:
        _run_until_signalled(lambda stop: run_worker(settings, stop))
    except AirflowMismatch as err:
        print(f"dagbridge: cannot start the worker: {err}", file=sys.stderr)
        return 1
    return 0


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from dagbridge.dev import run_dev

    return run_dev(settings, demo=args.demo, free_ports=args.free_ports, data_dir=args.data_dir)


def _routes(settings: Settings) -> Any:
    """The routes file's compiled routes (none when unset); prints its problems and returns None when wrong."""
    from bridge.routes import NO_ROUTES, RoutesFileError, load_routes

    if settings.routes_file is None:
        return NO_ROUTES
    try:
        return load_routes(settings.routes_file)
    except RoutesFileError as err:
        for line in err.lines:
            print(f"dagbridge: invalid routes file {line}", file=sys.stderr)
        return None


def _bridge(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.consumer import TriggerBridge
    from infra.metrics_server import serve_metrics

    routes = _routes(settings)
    if routes is None:
        return 2
    # Reading the dags folder for AssetWatchers imports Airflow, which replaces the logging configuration.
    from dagbridge.asset_watchers import served_watchers

    configure_logging(settings)
    _quiet_airflow()  # again: importing Airflow set its loggers' level back to INFO
    watchers = served_watchers(settings)
    # Before the bridge connects: its Temporal client then reports the SDK's metrics too.
    metrics_server = serve_metrics(settings)
    _run_until_signalled(TriggerBridge(settings, routes=routes, watchers=watchers).run)
    if metrics_server is not None:
        metrics_server.close()
    return 0


def _trigger(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import MessageSizeTooLargeError
    from pydantic import ValidationError

    from dagbridge.terminal import send_trigger, trigger_message
    from schemas.messages import validation_reason

    try:
        message = trigger_message(
            args.dag_id,
            conf=args.conf,
            run_id=args.run_id,
            logical_date=args.logical_date,
            idempotency_key=args.idempotency_key,
            max_conf_bytes=settings.max_conf_bytes,
        )
    except ValidationError as err:
        print(f"the bridge would reject this trigger: {validation_reason(err)}", file=sys.stderr)
        return 2
    try:
        sent = asyncio.run(send_trigger(settings, message))
    except MessageSizeTooLargeError as err:
        # The producer's request limit (1 MiB) or the broker's message.max.bytes: a larger conf than
        # DAGBRIDGE_MAX_CONF_BYTES allows, or a broker configured below it.
        print(f"dagbridge: Kafka refused the trigger ({err})", file=sys.stderr)
        return 2
    print(f"sent to {sent.topic}[{sent.partition}]@{sent.offset}: run {sent.run_id} (workflow {sent.workflow_id})")
    return 0


def _events(args: argparse.Namespace, settings: Settings) -> int:
    from dagbridge.terminal import describe, read_events

    async def main(stop: asyncio.Event) -> None:
        async def show() -> None:
            async for event in read_events(settings, follow=args.follow, run_id=args.run_id):
                print(event.model_dump_json() if args.json else describe(event), flush=True)

        # --follow only ends with a signal; without it, printing ends at the topics' end.
        printing = asyncio.ensure_future(show())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({printing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if printing.done():
            printing.result()
        else:
            printing.cancel()
            await asyncio.gather(printing, return_exceptions=True)

    try:
        _run_until_signalled(main)
    except BrokenPipeError:
        # The reader went away (`dagbridge events | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
    from pydantic import ValidationError
    from temporalio.client import WorkflowFailureError

    from dagbridge.run_views import result_or_stuck_notice
    from dagbridge.terminal import trigger_message
    from infra.temporal import connect, run_options, start_dag_run
    from schemas.messages import validation_reason

    now = datetime.now(tz=UTC)
    try:
        # The rules of a trigger message (Airflow's ID rules, plain bounded JSON conf) hold here too.
        message = trigger_message(
            args.dag_id,
            conf=args.conf,
            run_id=args.run_id or f"manual__{now.isoformat()}",
            logical_date=args.logical_date or now,
            max_conf_bytes=settings.max_conf_bytes,
        )
    except ValidationError as err:
        print(f"dagbridge: invalid run: {validation_reason(err)}", file=sys.stderr)
        return 2
    assert message.run_id is not None  # given above
    request = DagRunRequest(
        dag_id=message.dag_id,
        run_id=message.run_id,
        logical_date=message.logical_date,
        conf=message.conf or {},
        options=run_options(settings),
    )

    async def main() -> dict[str, Any]:
        client = await connect(settings)
        handle = await start_dag_run(client, request, settings.task_queue, trigger_source="cli")
        try:
            return run_result_json(await result_or_stuck_notice(handle, request.dag_id, request.run_id))
        except WorkflowFailureError as err:
            cause = err.cause
            message = getattr(cause, "message", None) or str(cause)
            return {
                "dag_id": request.dag_id,
                "run_id": request.run_id,
                "state": "failed",
                "error": message,
                "task_instances": {},
            }

    output = asyncio.run(main())
    if args.json:
        print(json.dumps(output, indent=2, default=str))
    else:
        print(f"{output['dag_id']} {output['run_id']}: {output['state']}")
        if output["error"]:
            print(f"  error: {output['error']}")
        for label, ti in output["task_instances"].items():
            print(f"  {label:<40} {ti['state']!s:<16} try {ti['try_number']}")
    return 0 if output["state"] == "success" else 1


def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
    from temporalio.exceptions import CancelledError
    from temporalio.service import RPCError, RPCStatusCode

    from infra.temporal import connect

    label = f"DAG run {args.dag_id} {args.run_id}"

    async def main() -> tuple[int, str]:
        client = await connect(settings)
        handle = client.get_workflow_handle(dag_run_workflow_id(args.dag_id, args.run_id))
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return 1, f"no {label} (no workflow {handle.id})"
        # Cancelling a closed workflow is not reliably an error (a cancelled one takes it): check first.
        if description.status != WorkflowExecutionStatus.RUNNING:
            return 1, f"{label} already ended: {description.status.name.lower()}"
        try:
            await handle.cancel()
        except RPCError as err:
            # It closed since the check; its result below says how.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            if args.no_wait:
                return 0, f"{label}: cancellation requested"
        try:
            await handle.result()
        except WorkflowFailureError as err:
            if isinstance(err.cause, CancelledError):
                return 0, f"{label} cancelled: its running tasks were stopped"
            return 1, f"{label} failed before the cancellation reached it: {err.cause}"
        return 1, f"{label} finished before the cancellation reached it"

    code, message = asyncio.run(main())
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _fail(message: str) -> int:
    print(f"dagbridge: {message}", file=sys.stderr)
    return 1


def _logs(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.service import RPCError

    from dagbridge.task_log_command import LogCommandError, print_task_log

    try:
        asyncio.run(
            print_task_log(
                settings,
                args.dag_id,
                args.run_id,
                args.task_id,
                map_index=args.map_index,
                try_number=args.try_number,
                follow=args.follow,
            )
        )
    except LogCommandError as err:
        return _fail(str(err))
    except RPCError as err:
        return _fail(f"cannot ask Temporal at {settings.temporal_address} whether the try runs: {err.message}")
    except OSError as err:
        return _fail(f"cannot read the log under {settings.logs_base}: {err}")
    except KeyboardInterrupt:
        return 130
    return 0


def _runs(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.service import RPCError

    from dagbridge.run_views import RunViewError, list_runs, runs_table

    try:
        runs = asyncio.run(list_runs(settings, args.dag_id, args.state, args.limit))
    except RunViewError as err:
        return _fail(str(err))
    except RPCError as err:
        return _fail(f"cannot list runs: {err.message}")
    print(json.dumps(runs, indent=2, default=str) if args.json else runs_table(runs))
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from dagbridge.run_views import RunViewError, run_status, status_table

    try:
        status = asyncio.run(run_status(settings, args.dag_id, args.run_id))
    except RunViewError as err:
        return _fail(str(err))
    print(json.dumps(status, indent=2, default=str) if args.json else status_table(status))
    return 0


def _pause(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.service import RPCError

    from dagbridge.schedule_commands import NoSchedule, set_paused
    from infra.temporal import connect

    paused = args.command == "pause"

    async def main() -> bool:
        return await set_paused(await connect(settings), args.dag_id, paused)

    try:
        was_paused = asyncio.run(main())
    except NoSchedule as err:
        print(f"dagbridge: {err}", file=sys.stderr)
        return 1
    except RPCError as err:
        print(f"dagbridge: Temporal refused or did not answer: {err}", file=sys.stderr)
        return 1
    state = "paused" if paused else "unpaused"
    print(f"{args.dag_id}: {state}" + (" (it already was)" if was_paused == paused else ""))
    return 0


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError, RPCStatusCode

    from dagbridge.schedule_commands import backfill_progress, describe_progress, start_backfill
    from infra.temporal import connect, run_options
    from schemas.ids import backfill_workflow_id
    from schemas.schedules import ReprocessBehavior

    async def cancel() -> tuple[int, str]:
        client = await connect(settings)
        handle = client.get_workflow_handle(backfill_workflow_id(args.dag_id, args.from_date, args.to_date))
        try:
            await handle.cancel()
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return 1, f"no running backfill of {args.dag_id} from {args.from_date} to {args.to_date}"
        return 0, f"backfill of {args.dag_id} cancelled: no more runs start; started runs finish"

    async def run() -> tuple[int, str]:
        client = await connect(settings)
        handle = await start_backfill(
            client,
            settings.task_queue,
            args.dag_id,
            args.from_date,
            args.to_date,
            reprocess_behavior=ReprocessBehavior(args.reprocess_behavior),
            max_active_runs=args.max_active_runs,
            run_backwards=args.run_backwards,
            options=run_options(settings),
        )
        print(f"backfill workflow {handle.id}", flush=True)
        if not args.wait:
            return 0, "started; follow it with the same command and --wait"
        result = asyncio.ensure_future(handle.result())
        shown = ""
        while not result.done():
            await asyncio.wait({result}, timeout=2)
            if not result.done():
                try:
                    line = describe_progress(await backfill_progress(handle))
                except RPCError:
                    continue  # a busy worker did not answer in time; the next try or the result will
                if line != shown:
                    print(line, flush=True)
                    shown = line
        try:
            progress = result.result()
        except WorkflowFailureError as err:
            cause = err.cause
            return 1, f"backfill failed: {getattr(cause, 'message', None) or cause}"
        failed = any(item.state not in (None, "success") for item in progress.items)
        return (1 if failed or progress.cancelled else 0), describe_progress(progress)

    try:
        code, message = asyncio.run(cancel() if args.cancel else run())
    except RPCError as err:
        code, message = 1, f"Temporal refused or did not answer: {err}"
    print(message if code == 0 else f"dagbridge: {message}", file=sys.stdout if code == 0 else sys.stderr)
    return code


def _topic_range(args: argparse.Namespace) -> Any:
    from bridge.replay import TopicRange

    return TopicRange(
        topic=args.topic,
        from_offset=args.from_offset,
        from_timestamp=args.from_timestamp,
        to_offset=args.to_offset,
        to_timestamp=args.to_timestamp,
        partitions=tuple(args.partition or ()),
    )


def _range_command(args: argparse.Namespace, settings: Settings, what: str) -> int:
    """Replay or reconcile: one summary line on stdout, one line per problem on stderr."""
    from aiokafka.errors import KafkaError
    from temporalio.service import RPCError

    from bridge.replay import ReplayError, reconcile, replay
    from infra.temporal import connect

    routes = _routes(settings)
    if routes is None:
        return 2
    span = _topic_range(args)
    from dagbridge.asset_watchers import served_watchers  # imports Airflow, which replaces the logging set-up

    configure_logging(settings)
    _quiet_airflow()  # again: importing Airflow set its loggers' level back to INFO
    watchers = served_watchers(settings)

    async def main() -> Any:
        client = await connect(settings)
        if what == "replay":
            return await replay(settings, routes, client, span, watchers=watchers)
        return await reconcile(settings, routes, client, span, watchers=watchers)

    try:
        summary = asyncio.run(main())
    except ReplayError as err:
        print(f"dagbridge {what}: {err}", file=sys.stderr)
        return 2
    except ServerUnreachable:
        raise  # main's one line, as for every command
    except (KafkaError, RPCError, RuntimeError, OSError) as err:
        print(f"dagbridge {what}: {type(err).__name__}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    print(summary.line(f"{what} {span.topic}"))
    if what == "replay":
        return 1 if summary.counts["error"] else 0
    # Like diff: 1 when the range and the runs disagree.
    return 1 if summary.counts["message without run"] or summary.counts["run without message"] else 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    return _range_command(args, settings, "replay")


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    return _range_command(args, settings, "reconcile")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _range_arguments(command: argparse.ArgumentParser, *, from_required: bool) -> None:
    command.add_argument("--topic", required=True, help="the trigger topic, a routed topic or an AssetWatcher's")
    start = command.add_mutually_exclusive_group(required=from_required)
    start.add_argument("--from-offset", type=_non_negative, metavar="N", help="first offset, in every partition")
    start.add_argument(
        "--from-timestamp", type=_aware_datetime, metavar="ISO", help="first record at or after this time"
    )
    end = command.add_mutually_exclusive_group()
    end.add_argument("--to-offset", type=_non_negative, metavar="N", help="stop before this offset (default: the end)")
    end.add_argument("--to-timestamp", type=_aware_datetime, metavar="ISO", help="stop at the first record at or after")
    command.add_argument(
        "--partition", type=_non_negative, action="append", metavar="P", help="only this partition (repeatable)"
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dagbridge", description="Run Airflow DAGs as Temporal workflows.")
    root.add_argument("--temporal-address", help="DAGBRIDGE_TEMPORAL_ADDRESS")
    root.add_argument("--task-queue", help="DAGBRIDGE_TASK_QUEUE")
    root.add_argument("--dags-folder", help="DAGBRIDGE_DAGS_FOLDER")
    root.add_argument("--kafka-bootstrap", help="DAGBRIDGE_KAFKA_BOOTSTRAP")
    commands = root.add_subparsers(dest="command", required=True)

    commands.add_parser(
        "worker",
        help="run workflows and task activities (DAGBRIDGE_WORKER_PROCESSES processes, one per core by default)",
    ).set_defaults(handler=_worker)

    dev = commands.add_parser("dev", help="run Temporal, Kafka, a worker and the bridge on this machine")
    dev.add_argument("--demo", action="store_true", help="trigger the example DAG through Kafka, print its events")
    dev.add_argument("--free-ports", action="store_true", help="let the kernel pick every port instead of the defaults")
    dev.add_argument("--data-dir", type=Path, help="where logs go (default: a new temporary directory)")
    dev.set_defaults(handler=_dev)

    run = commands.add_parser("run", help="start a DAG run directly (no Kafka), wait and print the result")
    run.add_argument("dag_id")
    run.add_argument("--conf", type=_json_object)
    run.add_argument("--run-id")
    run.add_argument("--logical-date", type=_aware_datetime)
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(handler=_run)

    cancel = commands.add_parser("cancel", help="cancel a running DAG run: stop its tasks, end it as failed")
    cancel.add_argument("dag_id")
    cancel.add_argument("run_id")
    cancel.add_argument("--no-wait", action="store_true", help="return once the cancellation is requested")
    cancel.set_defaults(handler=_cancel)

    commands.add_parser("bridge", help="consume trigger messages and start their DAG runs").set_defaults(
        handler=_bridge
    )

    trigger = commands.add_parser("trigger", help="produce a trigger message for the bridge")
    trigger.add_argument("dag_id")
    trigger.add_argument("--conf", type=_json_object)
    trigger.add_argument("--run-id")
    trigger.add_argument("--logical-date", type=_aware_datetime)
    trigger.add_argument("--idempotency-key", help="run ID kafka__<key> when --run-id is absent")
    trigger.set_defaults(handler=_trigger)

    replay = commands.add_parser(
        "replay",
        help="read a range of a topic again and start the runs it asks for that do not exist yet",
        description="Reads the range outside the bridge's consumer group (its offsets do not move) and maps "
        "each record as the bridge does: runs already started are duplicates, so a replay is always safe. "
        "Prints started/duplicate/invalid counts; exits 1 if Temporal refused a start.",
    )
    _range_arguments(replay, from_required=True)
    replay.set_defaults(handler=_replay)

    reconcile = commands.add_parser(
        "reconcile",
        help="report the records of a range with no run, and the runs started from it with no record",
        description="Starts nothing. Reads the range (default: from each partition's beginning) as replay does, "
        "checks that every run it maps to exists, and lists the runs of the DAGs it maps to whose source memo "
        "points into the range but that no record maps to any more. Exits 1 when it found either.",
    )
    _range_arguments(reconcile, from_required=False)
    reconcile.set_defaults(handler=_reconcile)

    events = commands.add_parser("events", help="print task and run events")
    events.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    events.add_argument("--run-id", help="only the events of this run")
    events.add_argument("--json", action="store_true", help="print each event as its JSON message")
    events.set_defaults(handler=_events)
    _add_run_view_commands(commands)
    _add_schedule_commands(commands)
    return root


def _add_schedule_commands(commands: argparse._SubParsersAction) -> None:
    for name, text in (("pause", "start no more scheduled runs of a DAG"), ("unpause", "schedule a DAG's runs again")):
        pause = commands.add_parser(name, help=f"{text} (explicit triggers always run)")
        pause.add_argument("dag_id")
        pause.set_defaults(handler=_pause)

    backfill = commands.add_parser(
        "backfill", help="create a DAG's runs for a past range (backfill__<date>), once each; show progress"
    )
    backfill.add_argument("dag_id")
    backfill.add_argument("--from", dest="from_date", type=_aware_datetime, required=True, help="ISO date with offset")
    backfill.add_argument("--to", dest="to_date", type=_aware_datetime, required=True, help="ISO date with offset")
    backfill.add_argument(
        "--reprocess-behavior",
        choices=["none", "failed", "completed"],
        default="none",
        help="intervals that already have a run: leave them (none), run failed ones again, or all of them",
    )
    backfill.add_argument("--max-active-runs", type=_positive_int, help="runs in flight at once (default: the DAG's)")
    backfill.add_argument("--run-backwards", action="store_true", help="latest interval first")
    backfill.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help="follow progress until the backfill ends"
    )
    backfill.add_argument("--cancel", action="store_true", help="cancel the running backfill of this range")
    backfill.set_defaults(handler=_backfill)


def _add_run_view_commands(commands: argparse._SubParsersAction) -> None:
    """``logs``, ``runs`` and ``status``: what runs did and are doing."""
    logs = commands.add_parser("logs", help="print a task try's log (the latest try unless --try)")
    logs.add_argument("dag_id")
    logs.add_argument("run_id")
    logs.add_argument("task_id")
    logs.add_argument("--map-index", type=int, default=-1, help="the mapped task instance")
    logs.add_argument("--try", dest="try_number", type=_positive_int, help="the try number (default: the latest)")
    logs.add_argument("--follow", action="store_true", help="keep printing while the try runs")
    logs.set_defaults(handler=_logs)

    runs = commands.add_parser("runs", help="list DAG runs, newest first, from Temporal's visibility")
    runs.add_argument("dag_id", nargs="?", help="only the runs of this DAG")
    runs.add_argument("--state", choices=run_attributes.RUN_STATES, help="only runs in this state")
    runs.add_argument("--limit", type=_positive_int, default=20, help="at most this many runs (default 20)")
    runs.add_argument("--json", action="store_true", help="print a JSON list")
    runs.set_defaults(handler=_runs)

    status = commands.add_parser("status", help="print a DAG run's task grid: state, try and duration per task")
    status.add_argument("dag_id")
    status.add_argument("run_id")
    status.add_argument("--json", action="store_true", help="print the run as JSON")
    status.set_defaults(handler=_status)


# Long-running processes: they wait for their servers and log each attempt.
SERVICES = frozenset({"worker", "bridge", "dev"})


def _not_a_bootstrap_failure(record: logging.LogRecord) -> bool:
    # aiokafka's format string for a bootstrap server it could not connect to.
    return not str(record.msg).startswith("Unable connect to")


def _quiet_airflow() -> None:
    """Airflow's notes on reading its config and the dags folder are not what a command reports."""
    logging.getLogger("airflow").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = {
        name: value
        for name in ("temporal_address", "task_queue", "dags_folder", "kafka_bootstrap")
        if (value := getattr(args, name)) is not None
    }
    for warning in unknown_setting_variables(os.environ):
        print(f"dagbridge: warning: {warning}", file=sys.stderr)
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        for line in settings_error_lines(err):
            print(f"dagbridge: invalid setting {line}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command not in SERVICES:
        # The command reports a broker it cannot reach as its one error line; aiokafka's own
        # log of the same failed bootstrap would be a second one.
        logging.getLogger("aiokafka").addFilter(_not_a_bootstrap_failure)
        _quiet_airflow()
    try:
        return args.handler(args, settings)
    except ServerUnreachable as err:
        # Every command that connects ends here, with one line naming the address and the setting.
        print(f"dagbridge: {err}", file=sys.stderr)
        return os.EX_UNAVAILABLE


def entry() -> NoReturn:
    """The console script: ``main``, then exit without tearing the interpreter down.

    The command is done. Temporal's client keeps native threads that can crash the interpreter
    while it tears down (seen as SIGSEGV after a successful `cancel`, SIGABRT after a failed
    connect); nothing is left to clean up.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
