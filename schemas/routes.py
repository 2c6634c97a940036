"""The routes file: which records of which business topics start which DAG runs, and how.

A contract with the people who write it (YAML at ``DAGBRIDGE_ROUTES_FILE``) and with tools that
check it (``schemas/json/routes.schema.json``). Expressions are JMESPath over one document per
record::

    {"payload": <the decoded value>, "key": <str or null>, "headers": {<name>: <str>},
     "topic": <str>, "partition": <int>, "offset": <int>, "timestamp": <int, ms>}

Templates are Jinja (sandboxed) over the same names. The bridge compiles every expression and
template when it starts (bridge/routes.py), so a typo stops it there, not at the first record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, model_validator

from schemas.messages import DagId
from schemas.runs import RunType

RouteName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$"),
    Field(description="Names the route in metrics labels and logs: lower-case letters, digits, '_.-'"),
]

# Temporal's default priority keys run from 1 (first) to 5 (last); 3 is the default of an unset key.
MAX_PRIORITY_KEY = 5


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathValue(_Spec):
    """The value a JMESPath expression finds in the record's document (null when absent)."""

    path: str = Field(min_length=1, description="JMESPath expression, e.g. payload.order.id or headers.priority")


class TemplateValue(_Spec):
    """A string rendered by a Jinja template over the record's document."""

    template: str = Field(min_length=1, description="Jinja template, e.g. 'order-{{ payload.id }}-{{ key }}'")


class LiteralValue(_Spec):
    """The same value for every record."""

    value: Any = Field(description="Any JSON value")


def _value_form(spec: Any) -> str | None:
    # Tell the form by its one key, so a mistake gets one clear error instead of one per form.
    keys = set(spec) if isinstance(spec, dict) else set()
    forms = keys & {"path", "template", "value"}
    return forms.pop() if len(forms) == 1 else None


ValueSpec = Annotated[
    Annotated[PathValue, Tag("path")]
    | Annotated[TemplateValue, Tag("template")]
    | Annotated[LiteralValue, Tag("value")],
    Discriminator(
        _value_form,
        custom_error_type="value_spec",
        custom_error_message="must be one of {path: <JMESPath>}, {template: <Jinja>} or {value: <JSON>}",
    ),
]


class AvroFormat(_Spec):
    """Avro values decoded with a schema file (fastavro)."""

    schema_file: Path = Field(
        description="The .avsc file (JSON); a relative path is read from the routes file's folder"
    )
    confluent_header: bool = Field(
        default=True,
        description="Values start with Confluent's wire-format header (magic byte 0, 4-byte schema ID), "
        "as Confluent serializers write them; false for bare Avro binary",
    )


class RateLimit(_Spec):
    messages_per_second: float = Field(gt=0, description="Records of this route started per second, on average")
    burst: int = Field(default=1, ge=1, description="Records that may start at once after a quiet period")


class Route(_Spec):
    """One rule: records of ``topic`` (or of every topic matching ``pattern``) that pass ``filter`` start ``dag_id``."""

    name: RouteName
    topic: str | None = Field(default=None, min_length=1, description="A topic name; exactly one of topic and pattern")
    pattern: str | None = Field(
        default=None,
        min_length=1,
        description="A Python regular expression that must match a whole topic name, e.g. 'orders\\.(eu|us)'",
    )
    avro: AvroFormat | None = Field(default=None, description="Values are Avro; absent: JSON (UTF-8)")
    filter: str | None = Field(
        default=None,
        description="JMESPath expression; the route takes a record when it is truthy "
        "(not null, false, empty string, empty list or empty object)",
    )
    dag_id: DagId
    run_id: ValueSpec | None = Field(
        default=None,
        description="The run ID becomes 'kafka__<value>'; absent: 'kafka__<topic>-<partition>-<offset>'. "
        "Take it from something the producer repeats on a retry (an order ID, the key) so a retry "
        "is a duplicate",
    )
    logical_date: ValueSpec | None = Field(
        default=None, description="RFC 3339 date-time with an offset; absent: the record's timestamp"
    )
    conf_from: ValueSpec | None = Field(
        default=None, description="A JSON object the conf starts from, e.g. {path: payload}; absent: {}"
    )
    conf: dict[str, ValueSpec] = Field(default_factory=dict, description="Conf keys set on top of conf_from")
    run_type: RunType = Field(default=RunType.MANUAL, description="What the run is recorded as")
    priority: ValueSpec | None = Field(
        default=None,
        description=f"The run's Temporal priority key, 1 (first) to {MAX_PRIORITY_KEY}; absent: the server's default",
    )
    priority_weight: ValueSpec | None = Field(
        default=None,
        description="An integer added to every task's priority_weight when its run waits for pool and task "
        "slots with other runs; absent: 0",
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="Absent: as fast as Temporal takes starts; when reached, the partition pauses"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.topic is None) == (self.pattern is None):
            raise ValueError("give exactly one of topic and pattern")
        return self


class DagFlow(_Spec):
    max_in_flight_runs: int | None = Field(
        default=None,
        ge=1,
        description="Runs of this DAG the bridge lets be started and not finished at once (whoever started "
        "them); when reached, the partitions whose records would start more pause until runs finish",
    )
    asset_watcher_batching: bool = Field(
        default=False,
        description="Messages of the DAG's AssetWatchers queue as Airflow's scheduler queues asset events: "
        "one run consumes every event queued since the last (default: one run per message)",
    )


class RoutesFile(_Spec):
    """The whole routes file."""

    model_config = ConfigDict(title="DagbridgeRoutes")

    routes: list[Route] = Field(default_factory=list)
    dags: dict[DagId, DagFlow] = Field(
        default_factory=dict, description="Flow control per DAG, for routed and trigger-topic records alike"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [route.name for route in self.routes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"route names must be unique: {', '.join(repeated)} repeated")
        return self
