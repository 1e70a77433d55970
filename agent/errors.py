"""The agent's one exception tree.

Adapters translate library errors (paho, httpx, sqlite3, pydantic) into these at the
edge with ``raise ... from err``, so callers never need to know which library failed.
Messages are built in ``__init__`` and never contain secrets or payload content.

    AgentError
    ├── ConfigError          bad settings file, key or secret file (exit code 2)
    ├── PayloadError         a device message we refuse (has a short ``reason``)
    ├── StoreError           SQLite could not do what we asked
    ├── BrokerError          MQTT connection or authentication trouble
    ├── ConsentError         an action the household's consent does not allow
    └── VendorError          the vendor API failed
        ├── VendorRetryable  outcome unknown or temporary: retry with the same key
        └── VendorFinal      the vendor said no for good: do not retry
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    exit_code = 1


class ConfigError(AgentError):
    """A configuration problem, reported as file, key and reason."""

    exit_code = 2

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}")


class PayloadError(AgentError):
    """A device message that is rejected; ``reason`` is a short stable token for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StoreError(AgentError):
    """The local database failed (disk full, corrupt file, locked too long); ``reason``
    is a short token such as ``disk_full``."""

    def __init__(self, message: str, reason: str = "sqlite_error") -> None:
        self.reason = reason
        super().__init__(message)


class BrokerError(AgentError):
    """The MQTT broker is unreachable or refused us."""


class ConsentError(AgentError):
    """An action outside what the household has allowed."""


class VendorError(AgentError):
    """The vendor ordering API failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class VendorRetryable(VendorError):
    """Timeout, connection error, 5xx, 409 in flight or 429: the outcome is unknown."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status)


class VendorFinal(VendorError):
    """The vendor refused for good (4xx other than 409/429): retrying cannot help."""
