"""Regenerate docs/configuration.md from streams.settings (``python docs/gen_configuration.py``)."""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings

HEADER = """# Configuration

relwatch reads its settings from the environment (CLI flags override a few of them). Names carry
the prefix `RELWATCH_` so that Faust's own variables (`BROKER_URL`, `APP_DATADIR`, `WEB_PORT`, ...)
cannot override them: relwatch passes every value to Faust explicitly. `KAFKA_BOOTSTRAP_SERVERS`
is the one conventional name it also reads; unset, commands use the embedded local broker.
Secrets (`RELWATCH_SASL_PASSWORD`) are never logged.

| variable | default | meaning |
|---|---|---|
"""


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        env = (
            "KAFKA_BOOTSTRAP_SERVERS" if name == "bootstrap_servers" else f"RELWATCH_{name.upper()}"
        )
        default = "<repo>/.relwatch" if name == "data_dir" else field.default
        rows.append(f"| `{env}` | `{default}` | {' '.join((field.description or '').split())} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    (Path(__file__).parent / "configuration.md").write_text(render(), encoding="utf-8")
