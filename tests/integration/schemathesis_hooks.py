"""Schemathesis hooks for ``test_vendor_schemathesis.py`` (loaded via SCHEMATHESIS_HOOKS).

The contract says a client makes one ``Idempotency-Key`` per purchase intent; a fuzzer
that reuses ``"0"`` for different bodies is (rightly) answered 422, which schemathesis
would count as "valid data rejected". So every well-formed key is made unique before the
call; malformed or missing keys are left alone so the negative cases still test the 400.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers
    if not headers:
        return
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _KEY_RE.match(key):
        headers["Idempotency-Key"] = f"st-{uuid.uuid4().hex}"
