"""The configuration reference (docs/configuration.md), generated from ``Settings``.

Regenerate with ``python -m dagbridge.settings_docs``; a test fails while the file is stale.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dagbridge.cli import parser
from schemas.settings import Settings, env_var

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

INTRO = """\
# Configuration

`dagbridge bridge`, `dagbridge worker` and the other commands read their settings from environment
variables. Every setting is checked when the command starts: a bad value stops it with exit code 2
and one line per bad setting, naming the variable. A `DAGBRIDGE_*` variable that is not a setting
(a typo) is reported as a warning. The most common settings also have a command-line flag, which
wins over the variable.

This page is generated from `schemas/settings.py` by `python -m dagbridge.settings_docs`.

| Variable | Flag | Type | Default | Description |
|---|---|---|---|---|
"""


def _type_name(annotation: object) -> str:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in args)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        names = [_type_name(arg) for arg in args if arg is not type(None)]
        return " \\| ".join(names) + (" (optional)" if type(None) in args else "")
    name = getattr(annotation, "__name__", str(annotation))
    # FilePath is Annotated[Path, PathType("file")]: say what it checks.
    if typing.get_origin(annotation) is typing.Annotated:
        return "existing file"
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Path": "path"}.get(name, name)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined or field.default is None:
        return ""
    if isinstance(field.default, Path):
        return f"`{field.default.as_posix()}`"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`"


def _flags() -> dict[str, str]:
    """The root parser's options whose help names a setting's variable."""
    return {
        action.help: action.option_strings[0]
        for action in parser()._actions
        if action.option_strings and action.help and action.help.startswith("DAGBRIDGE_")
    }


def configuration_markdown() -> str:
    flags = _flags()
    rows = []
    for name, field in Settings.model_fields.items():
        variable = env_var(name)
        flag = f"`{flags[variable]}`" if variable in flags else ""
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{variable}` | {flag} | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    return INTRO + "\n".join(rows) + "\n"


if __name__ == "__main__":
    DOC_PATH.parent.mkdir(exist_ok=True)
    DOC_PATH.write_text(configuration_markdown())
    print(f"wrote {DOC_PATH}")
