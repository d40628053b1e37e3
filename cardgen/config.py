"""Loading user-written YAML and cardgen-written JSON into pydantic models, with errors that name
the file, the line and the field.

    >>> from cardgen.lineage import LineageDeclaration
    >>> decl = load_yaml_model(Path("lineage.yaml"), LineageDeclaration)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cardgen.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a {what}.") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}).") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what} ({e.strerror or e}).") from None


def load_yaml_model(path: Path, model: type[M], *, what: str = "YAML file") -> M:
    """Parse ``path`` as YAML into ``model``.

    Raises ConfigError whose message names the file, the line and the field for syntax errors,
    unknown fields, missing fields and wrong types.
    """
    text = _read_text(path, what)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: invalid YAML: {problem}.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of fields, found {type(data).__name__}.")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, path, root)) from None


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    node, line = root, None
    if node is not None:
        line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt, line = value, key.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _describe(err: ValidationError, path: Path, root: yaml.Node | None) -> str:
    lines = []
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the reference in README.md)"
        elif item["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{where}: field '{field}': {msg}")
    return "\n".join(lines)


def load_json_model(path: Path, model: type[M]) -> M:
    """Read a JSON file that cardgen wrote earlier (identity.json, lineage.json, ...)."""
    text = _read_text(path, "JSON file")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}.") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"{path}: not a valid {model.__name__}: field '{field}': {first['msg']} "
            f"({e.error_count()} problem(s)).",
            hint="Was it written by a different cardgen version, or edited by hand?",
        ) from None
