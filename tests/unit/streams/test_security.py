"""Kafka client security from settings: kwargs, Faust credentials, redaction (no broker)."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from streams.security import (
    MASK,
    SecurityConfigError,
    build_ssl_context,
    faust_broker_credentials,
    kafka_python_security,
    redact,
)
from streams.settings import Settings, load_settings

PASSWORD = "s3cr3t-Pa55-\u00e9\u4e2d"  # non-ASCII on purpose: SCRAM encodes it as UTF-8
KAFKA_PYTHON_KEYS = {"security_protocol", "sasl_mechanism", "sasl_plain_username",
                     "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile"}


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD",
                 "SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE"):
        monkeypatch.delenv(f"RELWATCH_{name}", raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throw-away CA and a client certificate signed by it (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=relwatch", "-keyout",
        "client.key", "-out", "client.csr")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "client.crt")
    return {"ca": d / "ca.crt", "cert": d / "client.crt", "key": d / "client.key"}


def test_plaintext_default_sets_only_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    settings = load_settings()
    assert kafka_python_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(settings) is None


def test_sasl_scram_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("RELWATCH_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("RELWATCH_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RELWATCH_SASL_USERNAME", "relwatch")
    monkeypatch.setenv("RELWATCH_SASL_PASSWORD", PASSWORD)
    settings = load_settings()
    kwargs = kafka_python_security(settings)
    assert kwargs == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "relwatch",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(kwargs["sasl_plain_password"], str)
    assert str(kwargs["sasl_plain_password"]).encode() == PASSWORD.encode()  # SCRAM's view

    creds = faust_broker_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_PLAINTEXT"
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.username, creds.password, creds.ssl_context) == ("relwatch", PASSWORD, None)


def test_sasl_ssl_with_a_ca_file(pki: dict[str, Path]) -> None:
    settings = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                        sasl_username="relwatch", sasl_password=PASSWORD,
                        ssl_cafile=pki["ca"])
    kwargs = kafka_python_security(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["ssl_cafile"] == str(pki["ca"])
    assert "ssl_certfile" not in kwargs and "ssl_keyfile" not in kwargs
    creds = faust_broker_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-256"
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert creds.ssl_context.check_hostname
    assert any(c.get("subject") == ((("commonName", "test-ca"),),)
               for c in creds.ssl_context.get_ca_certs())


def test_mutual_tls(pki: dict[str, Path]) -> None:
    settings = Settings(security_protocol="SSL", ssl_cafile=pki["ca"],
                        ssl_certfile=pki["cert"], ssl_keyfile=pki["key"])
    assert kafka_python_security(settings) == {
        "security_protocol": "SSL", "ssl_cafile": str(pki["ca"]),
        "ssl_certfile": str(pki["cert"]), "ssl_keyfile": str(pki["key"])}
    creds = faust_broker_credentials(settings)
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.protocol.value == "SSL"
    assert isinstance(build_ssl_context(settings), ssl.SSLContext)


def test_a_missing_certificate_file_fails_loudly(tmp_path: Path) -> None:
    settings = Settings(security_protocol="SSL", ssl_cafile=tmp_path / "absent.crt")
    with pytest.raises(OSError):
        faust_broker_credentials(settings)


@pytest.mark.parametrize("settings, message", [
    (Settings(security_protocol="SASL_SSL", sasl_username="u"), "RELWATCH_SASL_PASSWORD"),
    (Settings(security_protocol="SASL_PLAINTEXT", sasl_password=PASSWORD),
     "RELWATCH_SASL_USERNAME"),
    (Settings(security_protocol="PLAINTEXT", ssl_cafile=Path("/ca.crt")), "RELWATCH_SSL_CAFILE"),
    (Settings(security_protocol="SSL", ssl_keyfile=Path("/k.pem")), "RELWATCH_SSL_CERTFILE"),
])
def test_contradictions_are_refused_without_leaking(settings: Settings, message: str) -> None:
    with pytest.raises(SecurityConfigError) as info:
        kafka_python_security(settings)
    assert message in str(info.value)
    assert PASSWORD not in str(info.value)
    with pytest.raises(SecurityConfigError):
        faust_broker_credentials(settings)


def test_kwargs_are_accepted_by_every_kafka_python_client() -> None:
    """Names as kafka-python spells them: each client's DEFAULT_CONFIG knows every key."""
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(client.DEFAULT_CONFIG) >= KAFKA_PYTHON_KEYS, client.__name__


def _secret_settings(pki: dict[str, Path]) -> Settings:
    return Settings(security_protocol="SASL_SSL", sasl_username="relwatch",
                    sasl_password=PASSWORD, ssl_cafile=pki["ca"])


def test_the_password_never_shows_in_redact_or_repr(pki: dict[str, Path]) -> None:
    settings = _secret_settings(pki)
    safe = redact(settings)
    assert safe["sasl_password"] == MASK
    assert safe["sasl_username"] == "relwatch"
    assert safe["ssl_cafile"] == str(pki["ca"])
    assert set(safe) == set(Settings.model_fields)
    rendered = json.dumps(safe)  # JSON-friendly: paths are strings
    kwargs = kafka_python_security(settings)
    creds = faust_broker_credentials(settings)
    for text in (rendered, repr(safe), repr(settings), str(settings), repr(kwargs), str(kwargs),
                 f"{kwargs}", repr(list(kwargs.values())), repr(creds),
                 str(creds)):
        assert PASSWORD not in text, text
    assert redact(Settings())["sasl_password"] is None


def test_kafka_python_debug_log_of_the_config_hides_the_password(
    pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """KafkaAdminClient logs its whole configuration dict at DEBUG (``%s`` of a dict)."""
    kwargs = kafka_python_security(_secret_settings(pki))
    with caplog.at_level(logging.DEBUG, logger="kafka.admin.client"):
        logging.getLogger("kafka.admin.client").debug(
            "Starting KafkaAdminClient with configuration: %s", kwargs)
    assert caplog.records
    assert PASSWORD not in caplog.text
    assert MASK in caplog.text
