"""What the settings tree is read from, apart from the tree itself: the TOML file, the
environment (through pydantic-settings, with the mapping ``load_settings`` was given),
secret files, and pydantic's errors turned into one sentence a household can act on."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import ConfigDict
from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from agent.errors import ConfigError
from agent.logs import register_secret

ENV_PREFIX = "REPLENISH_"
# Every section of the tree: unknown keys are errors, and nothing changes a loaded tree.
SECTION = ConfigDict(extra="forbid", frozen=True)

# Keys that would put a secret into the TOML itself: refused with a pointer to the file key.
_SECRET_KEYS = {"password": "password_file", "token": "token_file", "secret": "*_file"}


def read_toml(path: Path | None, source: str) -> Mapping[str, object]:
    """The TOML at ``path`` (None: empty), refused if it holds a secret inline."""
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(source, "-", "file not found") from None
    except PermissionError:
        raise ConfigError(source, "-", "permission denied") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, "-", f"not valid TOML ({err})") from None
    reject_inline_secrets(data, source)
    return data


def reject_inline_secrets(data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            reject_inline_secrets(value, source, f"{path}.")
        elif key in _SECRET_KEYS:
            raise ConfigError(
                source, path, f"secrets are not allowed inline; use {_SECRET_KEYS[key]}"
            )


def env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(p) for p in loc if not isinstance(p, int)).upper()


# The environment load_settings() was given (None: the process's own), for the source below.
ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("replenish_environ", default=None)


class MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping ``load_settings`` got."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = ENVIRON.get()
        if env is None:
            return super()._load_env_vars()
        return parse_env_vars(env, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


# What a pattern-checked field must look like, in words (pydantic would print the regex).
_PATTERN_HINTS = {
    "uri": "must start with ipp:// or ipps:// (e.g. ipp://printer.local:631/ipp/print)",
    "name": "may hold letters, digits, '_' and '-' (at most 64, starting with a letter "
            "or digit)",
    "time_zone": "must be an IANA time zone name such as Europe/Berlin",
    "discovery_prefix": "may hold letters, digits, '_' and '-' (at most 64)",
}


def plain_reason(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence a household can act on (no regexes, no jargon)."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    field = next((str(p) for p in reversed(error.get("loc", ())) if isinstance(p, str)), "")
    bounds = {"greater_than_equal": "must be at least {ge}", "greater_than": "must be more "
              "than {gt}", "less_than_equal": "must be at most {le}", "less_than": "must be "
              "less than {lt}", "string_too_short": "must have at least {min_length} "
              "characters", "string_too_long": "must have at most {max_length} characters"}
    if kind in bounds:
        return bounds[kind].format(**ctx)
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(field, "has a form that is not allowed here")
    simple = {"int_parsing": "must be a whole number", "int_from_float": "must be a whole "
              "number", "float_parsing": "must be a number", "bool_parsing": "must be true "
              "or false", "extra_forbidden": "is not a known setting (check the spelling "
              "and the section)", "missing": "is required", "string_type": "must be text "
              "in quotes", "path_type": "must be a file path", "int_type": "must be a "
              "whole number", "list_type": "must be a list ([[...]] blocks)",
              "model_type": "must be a [section]"}
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")


def resolve_secret_path(path: Path, env: Mapping[str, str] | None = None) -> Path:
    """Find a secret file: a bare name is looked up in systemd's credentials directory."""
    env = os.environ if env is None else env
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and not path.is_absolute():
        candidate = Path(creds) / path
        if candidate.exists():
            return candidate
    return path


def read_secret(path: Path | None, key: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read a secret file named by setting ``key``; errors name the key, never the content."""
    if path is None:
        return None
    resolved = resolve_secret_path(path, env)
    try:
        value = resolved.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(str(resolved), key, "secret file not found") from None
    except PermissionError:
        raise ConfigError(str(resolved), key, "secret file not readable") from None
    except UnicodeDecodeError:
        raise ConfigError(str(resolved), key, "secret file is not UTF-8 text") from None
    if not value:
        raise ConfigError(str(resolved), key, "secret file is empty")
    # Last line of defence: any log record that ever contains it gets it masked.
    register_secret(value)
    return value
