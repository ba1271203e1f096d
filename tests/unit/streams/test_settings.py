from __future__ import annotations

from pathlib import Path

from streams.settings import Settings, load_settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in Settings.model_fields:
        env = (
            "KAFKA_BOOTSTRAP_SERVERS" if name == "bootstrap_servers" else f"RELWATCH_{name.upper()}"
        )
        assert f"`{env}`" in text, env


def test_environment_and_overrides(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("RELWATCH_NAMESPACE", "prod")
    monkeypatch.setenv("BROKER_URL", "kafka://ignored:1")  # Faust's variable is not ours
    settings = load_settings()
    assert settings.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.topic_name("articles.raw") == "prod.articles.raw"
    assert settings.group_id == "relwatch-prod"
    assert load_settings(namespace="x").namespace == "x"


def test_no_namespace_means_plain_names(monkeypatch) -> None:
    monkeypatch.delenv("RELWATCH_NAMESPACE", raising=False)
    assert load_settings().topic_name("timeline.entries") == "timeline.entries"
