"""Write every contract as a JSON Schema file beside this module (``relwatch schemas``)."""

from __future__ import annotations

import json
from pathlib import Path

from .models import ALL_MODELS

SCHEMA_DIR = Path(__file__).resolve().parent / "json"


def render_schema(name: str) -> str:
    schema = ALL_MODELS[name].model_json_schema(mode="serialization")
    schema["$id"] = f"https://relwatch.invalid/schemas/{name}.json"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ALL_MODELS:
        path = directory / f"{name}.json"
        path.write_text(render_schema(name), encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names whose committed file is missing or differs from the model."""
    stale = []
    for name in ALL_MODELS:
        path = directory / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != render_schema(name):
            stale.append(name)
    return stale
