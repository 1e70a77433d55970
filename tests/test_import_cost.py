"""`replenish run` imports only what ingest and the agent's own passes need: every
module imported at start stays resident for the life of the service (issue 21: peak
RSS during the ingest burst). Checked on the import graph in a fresh interpreter, not
on timing or memory figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Packages a part of the agent uses on a path of its own (the web app, notifications,
# calendars, HTTP to the vendor, printers and Nightscout): imported where used.
NOT_AT_START = {"starlette", "jinja2", "uvicorn", "apprise", "icalendar",
                "recurring_ical_events", "httpx", "httpcore", "anyio"}

# What `python -m agent.cli.main run` imports before it runs: the parser with every
# subcommand, then the run command's service.
_PROBE = """
import json, sys
import agent.cli.main as main
main.build_parser()
import agent.cli.commands.run, agent.app.service
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_replenish_run_does_not_import_what_only_other_paths_use() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert "agent" in loaded and "paho" in loaded  # the probe did import the agent
    assert loaded & NOT_AT_START == set()
