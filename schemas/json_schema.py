"""Write the JSON Schema of every Kafka message (and of the routes file) to ``schemas/json/``.

Producers and consumers in other languages validate against these files; a test
regenerates them and fails when the committed copies are stale.
Run ``python -m schemas.json_schema`` after changing a message model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from schemas.messages import AssetEventMessage, RunEvent, TaskEvent, TriggerMessage
from schemas.routes import RoutesFile

SCHEMA_DIR = Path(__file__).parent / "json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# A trigger is described as the bridge reads it (optional fields may be left out), an event
# as dagbridge writes it (every field is always there, null when it has no value).
MODELS: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {
    "dag-trigger.schema.json": (TriggerMessage, "validation"),
    "task-event.schema.json": (TaskEvent, "serialization"),
    "run-event.schema.json": (RunEvent, "serialization"),
    "asset-event.schema.json": (AssetEventMessage, "serialization"),
    # Not a message: the routes file (YAML), for editors and CI checks of it.
    "routes.schema.json": (RoutesFile, "validation"),
}


def json_schemas() -> dict[str, str]:
    """File name -> file content, exactly as written to disk."""
    files = {}
    for name, (model, mode) in MODELS.items():
        schema: dict[str, Any] = {"$schema": DIALECT, **model.model_json_schema(mode=mode)}
        files[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in json_schemas().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_json_schemas():
        print(path)
