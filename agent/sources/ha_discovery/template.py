"""A safe subset of Home Assistant ``value_template``: parsed, never evaluated as code.

HA templates are Jinja2 (https://www.home-assistant.io/docs/configuration/templating/);
running a template from a foreign device would run its code. Discovery configs in the
wild almost always use one of a few shapes, and those are read here:

- ``{{ value }}`` and ``{{ value_json.a.b }}``, ``{{ value_json['a'] }}``,
  ``{{ value_json["a"][0] }}``
- followed by filters ``| float``, ``| int``, ``| round`` or ``| round(N)``
  (``float(0)``/``int(0)`` defaults are accepted and ignored: a value that does not
  parse is counted, not replaced by a default).

Anything else raises :class:`UnsupportedTemplate` with the reason; the entity is listed
as unsupported and cannot be adopted (an explicit mapping in ``agent.toml`` can read it).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from agent.errors import PayloadError


class UnsupportedTemplate(ValueError):
    """A template outside the safe subset."""


_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
_PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)"        # .key
                   r"|\[\s*'([^'\]]*)'\s*\]"            # ['key']
                   r'|\[\s*"([^"\]]*)"\s*\]'            # ["key"]
                   r"|\[\s*(\d+)\s*\]")                  # [0]
_FILTER = re.compile(r"^(float|int|round)(?:\(\s*(-?\d+(?:\.\d+)?)?\s*\))?$")


@dataclass(slots=True, frozen=True)
class Template:
    """A parsed template: where the number is and what happens to it."""

    json_path: tuple[str | int, ...] | None  # None: the raw payload (``value``)
    filters: tuple[tuple[str, float | None], ...]
    source: str

    def _value(self, payload: bytes) -> object:
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise PayloadError("not UTF-8") from None
        value: object = text
        if self.json_path is not None:
            try:
                value = json.loads(text)
            except ValueError:
                raise PayloadError("not JSON") from None
            for step in self.json_path:
                if isinstance(step, int) and isinstance(value, list) and step < len(value):
                    value = value[step]
                elif isinstance(step, str) and isinstance(value, dict) and step in value:
                    value = value[step]
                else:
                    raise PayloadError("path missing") from None
        return value

    def text(self, payload: bytes) -> str:
        """The value at the path as text, e.g. a button's ``action`` (``single``)."""
        value = self._value(payload)
        if isinstance(value, dict | list) or value is None:
            raise PayloadError("not a value")
        return str(value)

    def number(self, payload: bytes) -> float:
        """The number this template yields for ``payload``; PayloadError with a reason."""
        value = self._value(payload)
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            raise PayloadError("not a number")
        try:
            number = float(value)  # type: ignore[arg-type]
        except ValueError:
            raise PayloadError("not a number") from None
        if not math.isfinite(number):
            raise PayloadError("not a number")
        for name, arg in self.filters:
            if name == "int":
                number = float(int(number))
            elif name == "round":
                number = round(number, int(arg) if arg is not None else 0)
        return number


def parse_template(source: str | None) -> Template:
    """Parse a value_template (None: the raw payload is the number)."""
    if source is None or not source.strip():
        return Template(None, (), "")
    m = _WHOLE.match(source)
    if not m or "{{" in m.group(1) or "{%" in source:
        raise UnsupportedTemplate("only a single {{ ... }} expression is read")
    expr, *filters = [part.strip() for part in m.group(1).split("|")]
    path: tuple[str | int, ...] | None
    if expr == "value":
        path = None
    elif expr.startswith("value_json"):
        rest, steps, pos = expr[len("value_json"):].strip(), [], 0
        while pos < len(rest):
            step = _PATH.match(rest, pos)
            if not step:
                raise UnsupportedTemplate(f"unsupported expression {expr[:40]!r}")
            attr, sq, dq, idx = step.groups()
            steps.append(int(idx) if idx is not None else (attr or sq or dq or ""))
            pos = step.end()
        if not steps:
            raise UnsupportedTemplate("value_json without a key")
        path = tuple(steps)
    else:
        raise UnsupportedTemplate(f"unsupported expression {expr[:40]!r}")
    parsed: list[tuple[str, float | None]] = []
    for f in filters:
        fm = _FILTER.match(f.replace(" ", ""))
        if not fm:
            raise UnsupportedTemplate(f"unsupported filter {f[:30]!r}")
        name, arg = fm.group(1), fm.group(2)
        parsed.append((name, float(arg) if arg is not None and name == "round" else None))
    return Template(path, tuple(parsed), source)
