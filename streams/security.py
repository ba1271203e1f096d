"""Kafka client security from relwatch settings: SASL/SCRAM and TLS for every client.

One source of truth, :class:`streams.settings.Settings` (``RELWATCH_SECURITY_PROTOCOL``,
``RELWATCH_SASL_*``, ``RELWATCH_SSL_*``), turned into what each client library takes:

* :func:`kafka_python_security`: keyword arguments for kafka-python's ``KafkaProducer``,
  ``KafkaConsumer`` and ``KafkaAdminClient`` (producers, topic creation, readers, lag);
* :func:`faust_broker_credentials`: ``broker_credentials`` for ``faust.App`` (the worker,
  through aiokafka);
* :func:`redact`: the settings as a dict that is safe to log.

The password never reaches a log line through these functions: ``Settings`` holds it as a
``SecretStr``; the kwargs carry it as a ``str`` whose ``repr`` is masked (kafka-python's
``KafkaAdminClient`` logs its configuration dict at DEBUG, and a dict renders its values with
``repr``); Faust's ``SASLCredentials`` prints the user name only. Log :func:`redact`, never the
kwargs themselves. See docs/deployment.md, "Security".
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
from faust.types.auth import CredentialsT
from pydantic import SecretBytes, SecretStr

from .settings import Settings

__all__ = [
    "MASK",
    "MaskedStr",
    "SecurityConfigError",
    "build_ssl_context",
    "faust_broker_credentials",
    "kafka_python_security",
    "redact",
]

MASK = "**********"

_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SECRET_FIELDS = frozenset({"sasl_password"})


class SecurityConfigError(ValueError):
    """The security settings contradict each other (the message never holds a secret)."""


class MaskedStr(str):
    """A ``str`` that shows :data:`MASK` in ``repr`` (dicts and lists in log lines).

    Its value is the real secret: ``.encode()``, ``join`` and equality see it, so client
    libraries use it like any string.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


def _check(settings: Settings) -> None:
    protocol = settings.security_protocol
    if protocol in _SASL_PROTOCOLS:
        missing = [name for name, value in (("RELWATCH_SASL_USERNAME", settings.sasl_username),
                                            ("RELWATCH_SASL_PASSWORD", settings.sasl_password))
                   if not value]
        if missing:
            raise SecurityConfigError(
                f"security_protocol {protocol} needs {' and '.join(missing)}")
    if protocol not in _TLS_PROTOCOLS:
        given = [name for name, value in (("RELWATCH_SSL_CAFILE", settings.ssl_cafile),
                                          ("RELWATCH_SSL_CERTFILE", settings.ssl_certfile),
                                          ("RELWATCH_SSL_KEYFILE", settings.ssl_keyfile))
                 if value is not None]
        if given:
            # a CA or client certificate with a plaintext protocol would silently not be used
            raise SecurityConfigError(
                f"{', '.join(given)} set but security_protocol is {protocol}: "
                "use SSL or SASL_SSL")
    if settings.ssl_keyfile is not None and settings.ssl_certfile is None:
        raise SecurityConfigError("RELWATCH_SSL_KEYFILE set without RELWATCH_SSL_CERTFILE")


def kafka_python_security(settings: Settings) -> dict[str, object]:
    """Keyword arguments for kafka-python clients: only what the settings set.

    ``security_protocol`` always; ``sasl_mechanism``, ``sasl_plain_username`` and
    ``sasl_plain_password`` with a ``SASL_*`` protocol; ``ssl_cafile``, ``ssl_certfile`` and
    ``ssl_keyfile`` when given (with ``SSL`` or ``SASL_SSL``; without a CA file the system
    trust store verifies the brokers). Raises :class:`SecurityConfigError` on contradictions.
    """
    _check(settings)
    kwargs: dict[str, object] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in _SASL_PROTOCOLS:
        assert settings.sasl_password is not None  # _check
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = MaskedStr(settings.sasl_password.get_secret_value())
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value: Path | None = getattr(settings, name)
        if value is not None:
            kwargs[name] = str(value)
    return kwargs


def client_security() -> dict[str, object]:
    """:func:`kafka_python_security` for the settings in the environment: what every plain
    kafka-python client of relwatch (producers, admin, readers, monitor) passes."""
    from .settings import load_settings

    return kafka_python_security(load_settings())


def build_ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context: verifies the brokers (CA file or system store), hostname checked;
    presents the client certificate when one is configured (mutual TLS)."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile is not None else None,
    )
    if settings.ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile) if settings.ssl_keyfile is not None else None,
        )
    return context


def faust_broker_credentials(settings: Settings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App``: None for PLAINTEXT, ``faust.SSLCredentials``
    for SSL, ``faust.SASLCredentials`` (with a TLS context for SASL_SSL) otherwise."""
    _check(settings)
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(build_ssl_context(settings))
    assert settings.sasl_password is not None  # _check
    credentials = faust.SASLCredentials(
        username=settings.sasl_username,
        password=MaskedStr(settings.sasl_password.get_secret_value()),
        ssl_context=build_ssl_context(settings) if protocol == "SASL_SSL" else None,
        mechanism=settings.sasl_mechanism,
    )
    return credentials


def redact(settings: Settings) -> dict[str, Any]:
    """Every setting as a JSON-friendly dict, secrets replaced by :data:`MASK` (None stays
    None, so the log still tells whether a secret was given)."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if name in _SECRET_FIELDS or isinstance(value, SecretStr | SecretBytes):
            out[name] = None if value is None else MASK
        elif isinstance(value, Path):
            out[name] = str(value)
        else:
            out[name] = value
    return out
