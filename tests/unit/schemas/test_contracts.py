from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.export import SCHEMA_DIR, check_schemas, render_schema
from schemas.models import ALL_MODELS, RawArticle
from schemas.topics import ALL_TOPICS


def test_committed_json_schemas_match_the_models() -> None:
    assert check_schemas() == [], "run `relwatch schemas` and commit schemas/json/"


def test_check_detects_a_stale_file(tmp_path) -> None:
    for name in ALL_MODELS:
        (tmp_path / f"{name}.json").write_text(render_schema(name), encoding="utf-8")
    assert check_schemas(tmp_path) == []
    (tmp_path / "raw_article.json").write_text("{}", encoding="utf-8")
    assert check_schemas(tmp_path) == ["raw_article"]


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_every_contract_has_a_schema_version(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert "schema_version" in schema["properties"]


def test_contracts_are_strict() -> None:
    with pytest.raises(ValidationError):
        RawArticle.model_validate({"id": "a", "text": "x", "ingested_at": 1.0, "bogus": 1})
    with pytest.raises(ValidationError):
        RawArticle.model_validate({"id": "a", "ingested_at": 1.0})


def test_every_topic_is_named_once() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    compacted = {t.name for t in ALL_TOPICS if t.compacted}
    assert "timeline.entries" in compacted
