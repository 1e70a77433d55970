"""doctor's sources check: recent foreign faults warn, old ones are only details."""

from __future__ import annotations

from pathlib import Path

from agent.ops.doctor import Level, Probes, check_sources
from agent.storage.sources import SourceStore


def test_recent_faults_warn_and_old_ones_do_not(tmp_path: Path) -> None:
    db_path = tmp_path / "agent.db"
    with SourceStore(db_path) as db:
        db.count_rejects({("nightscout", "HTTP 401 (token refused)"): 3}, now=1_000_000.0)
    warn = check_sources(db_path, Probes(clock=lambda: 1_000_100.0))
    assert warn.level is Level.WARN and "nightscout HTTP 401" in warn.summary
    assert warn.details == ("nightscout: HTTP 401 (token refused) x3 "
                            "(last 1970-01-12T13:46:40Z)",)
    later = check_sources(db_path, Probes(clock=lambda: 1_000_000.0 + 2 * 86_400))
    assert later.level is Level.OK
    assert check_sources(tmp_path / "none.db", Probes()).level is Level.OK
