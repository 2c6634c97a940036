"""Load the routes file and compile everything in it, or say in one line per problem what is wrong.

Every expression, template, pattern and Avro schema is compiled here, at start: a typo in the
file stops the bridge before it consumes anything, never halfway through a topic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import jmespath
import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from jmespath.exceptions import JMESPathError
from pydantic import ValidationError

from schemas.routes import LiteralValue, PathValue, Route, RoutesFile, TemplateValue, ValueSpec

Report = Callable[[str, str], None]  # (field, what is wrong with it)


class RoutesFileError(Exception):
    """The routes file cannot be used; ``lines`` names each problem (route and field) on its own line."""

    def __init__(self, path: Path, lines: list[str]) -> None:
        self.lines = [f"{path}: {line}" for line in lines]
        super().__init__("\n".join(self.lines))


# Autoescaping is for HTML; a conf value is data. Sandboxed: a template cannot reach Python internals.
_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@dataclass(frozen=True)
class CompiledValue:
    """A value spec ready to evaluate: exactly one of its three forms is set."""

    source: str  # how the routes file wrote it, for error messages
    path: Any = None  # jmespath.parser.ParsedResult
    template: Any = None  # jinja2.Template
    literal: Any = None

    @classmethod
    def literal_value(cls, value: Any) -> CompiledValue:
        return cls(source=json.dumps(value), literal=value)


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    topic_pattern: re.Pattern[str] | None
    filter: Any  # jmespath.parser.ParsedResult | None
    avro_schema: Any  # fastavro parsed schema | None
    run_id: CompiledValue | None
    logical_date: CompiledValue | None
    conf_from: CompiledValue | None
    conf: dict[str, CompiledValue]
    priority: CompiledValue | None
    priority_weight: CompiledValue | None

    @property
    def name(self) -> str:
        return self.route.name

    def reads(self, topic: str) -> bool:
        if self.topic_pattern is None:
            return topic == self.route.topic
        return self.topic_pattern.fullmatch(topic) is not None


@dataclass(frozen=True)
class Routes:
    routes: list[CompiledRoute]
    max_in_flight_runs: dict[str, int]
    # DAGs whose AssetWatcher messages queue in the DAG's asset schedule instead of starting a run each.
    batched_watcher_dags: frozenset[str] = frozenset()

    @property
    def topics(self) -> set[str]:
        return {route.route.topic for route in self.routes if route.route.topic is not None}

    @property
    def patterns(self) -> list[str]:
        return [route.route.pattern for route in self.routes if route.route.pattern is not None]


NO_ROUTES = Routes(routes=[], max_in_flight_runs={})


def load_routes(path: Path) -> Routes:
    """Read, validate and compile the routes file at ``path``; raises ``RoutesFileError``."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RoutesFileError(path, [f"cannot read it: {err.strerror}"]) from None
    except yaml.YAMLError as err:
        raise RoutesFileError(path, [f"not YAML: {' '.join(str(err).split())}"]) from None
    return parse_routes(document, base=path.parent, path=path)


def parse_routes(document: Any, *, base: Path, path: Path = Path("routes")) -> Routes:
    """Validate and compile an already parsed routes document; raises ``RoutesFileError``."""
    try:
        model = RoutesFile.model_validate(document if document is not None else {})
    except ValidationError as err:
        lines = [_validation_line(document, error) for error in err.errors(include_url=False)]
        raise RoutesFileError(path, lines) from None
    problems: list[str] = []
    compiled = []
    for index, route in enumerate(model.routes):
        found: list[str] = []
        compiled_route = _compile_route(route, base, lambda field, why, found=found: found.append(f"{field}: {why}"))
        problems += [f"routes[{index}] ({route.name}).{line}" for line in found]
        if not found:
            compiled.append(compiled_route)
    if problems:
        raise RoutesFileError(path, problems)
    return Routes(
        routes=compiled,
        max_in_flight_runs={
            dag_id: flow.max_in_flight_runs for dag_id, flow in model.dags.items() if flow.max_in_flight_runs
        },
        batched_watcher_dags=frozenset(dag_id for dag_id, flow in model.dags.items() if flow.asset_watcher_batching),
    )


def _validation_line(document: Any, error: Any) -> str:
    location = list(error["loc"])
    # Name a route by its name as well as its index: "routes[2] (orders-eu).filter".
    if len(location) >= 2 and location[0] == "routes" and isinstance(location[1], int):
        name = _route_name(document, location[1])
        head = f"routes[{location[1]}]" + (f" ({name})" if name else "")
        rest = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location[2:])
        where = head + rest
    else:
        where = ".".join(str(part) for part in location) or "file"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def _route_name(document: Any, index: int) -> str | None:
    try:
        name = document["routes"][index]["name"]
    except (TypeError, KeyError, IndexError):
        return None
    return name if isinstance(name, str) else None


def _compile_route(route: Route, base: Path, report: Report) -> CompiledRoute:
    """Compile every part of ``route``; each part that does not compile is reported (and left None)."""
    topic_pattern = None
    if route.pattern is not None:
        try:
            topic_pattern = re.compile(route.pattern)
        except re.error as err:
            report("pattern", f"not a regular expression: {err}")
    route_filter = None
    if route.filter is not None:
        route_filter = _compile_path(route.filter, "filter", report)
    avro_schema = None
    if route.avro is not None:
        schema_path = route.avro.schema_file if route.avro.schema_file.is_absolute() else base / route.avro.schema_file
        try:
            avro_schema = fastavro.parse_schema(json.loads(schema_path.read_text(encoding="utf-8")))
        except OSError as err:
            report("avro.schema_file", f"cannot read {schema_path}: {err.strerror}")
        except (ValueError, fastavro.schema.SchemaParseException) as err:
            report("avro.schema_file", f"{schema_path} is not an Avro schema: {err}")

    def value(spec: ValueSpec | None, field: str) -> CompiledValue | None:
        return None if spec is None else _compile_value(spec, field, report)

    return CompiledRoute(
        route=route,
        topic_pattern=topic_pattern,
        filter=route_filter,
        avro_schema=avro_schema,
        run_id=value(route.run_id, "run_id"),
        logical_date=value(route.logical_date, "logical_date"),
        conf_from=value(route.conf_from, "conf_from"),
        conf={key: _compile_value(spec, f"conf.{key}", report) for key, spec in route.conf.items()},
        priority=value(route.priority, "priority"),
        priority_weight=value(route.priority_weight, "priority_weight"),
    )


def _compile_path(expression: str, field: str, report: Report) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as err:
        report(field, f"not a JMESPath expression: {' '.join(str(err).split())}")
        return None


def _compile_value(spec: ValueSpec, field: str, report: Report) -> CompiledValue:
    if isinstance(spec, PathValue):
        return CompiledValue(source=spec.path, path=_compile_path(spec.path, field, report))
    if isinstance(spec, TemplateValue):
        try:
            template = _TEMPLATES.from_string(spec.template)
        except TemplateError as err:
            report(field, f"not a Jinja template: {err}")
            template = None
        return CompiledValue(source=spec.template, template=template)
    assert isinstance(spec, LiteralValue)
    return CompiledValue.literal_value(spec.value)
