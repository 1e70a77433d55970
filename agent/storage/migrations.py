"""Versioned schema migrations, tracked in ``PRAGMA user_version``.

Append a new entry to ``MIGRATIONS``; never edit one that has shipped. Each runs in one
transaction, so a power cut mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from agent.storage.migrations_base import BASE_MIGRATIONS
from agent.storage.packed import Reading, dumps, element, hour_of, slot
from agent.storage.tx import immediate

# Timestamps are epoch seconds (REAL): compact, sortable and free of time-zone text.
MIGRATIONS: list[tuple[int, str]] = [
    *BASE_MIGRATIONS,
    (
        3,
        """
        -- Who ended an intent, as a column (issue 14): today's rows are classified from
        -- the text and audit records once, here; nothing reads ``reason`` for state again.
        ALTER TABLE intents ADD COLUMN decided_by TEXT;
        UPDATE intents SET decided_by = CASE
            WHEN state IN ('delivered', 'rejected', 'failed') THEN 'vendor'
            WHEN state != 'cancelled' THEN NULL
            WHEN reason LIKE 'cancelled by household%' THEN 'household'
            WHEN EXISTS (SELECT 1 FROM audit a WHERE a.kind = 'order_cancel_requested'
                         AND json_extract(a.body, '$.intent') = intents.id) THEN 'household'
            WHEN reason LIKE '%expired%' THEN 'expiry'
            WHEN order_status = 'cancelled' THEN 'vendor'
            ELSE 'consent' END;
        -- The household's latest snooze per consumable (was read back out of audit JSON).
        CREATE TABLE snoozes (
            consumable  TEXT PRIMARY KEY,
            until       REAL NOT NULL,
            intent_id   INTEGER,
            audit_id    INTEGER NOT NULL,
            ts          REAL NOT NULL
        );
        INSERT INTO snoozes (consumable, until, intent_id, audit_id, ts)
        SELECT a.consumable,
               ROUND((julianday(json_extract(a.body, '$.until')) - 2440587.5) * 86400.0, 3),
               json_extract(a.body, '$.intent'), a.id, a.ts
        FROM audit a
        WHERE a.kind = 'proposal_snoozed' AND a.consumable IS NOT NULL
          AND julianday(json_extract(a.body, '$.until')) IS NOT NULL
          AND a.id = (SELECT MAX(b.id) FROM audit b
                      WHERE b.kind = 'proposal_snoozed' AND b.consumable = a.consumable);
        """,
    ),
    (
        4,
        """
        -- Readings judged while the gateway clock was not trusted: kept (and acknowledged)
        -- instead of rejected for clock skew, and judged again once it is synchronised.
        CREATE TABLE pending (
            id          INTEGER PRIMARY KEY,
            device_id   TEXT NOT NULL,
            topic       TEXT NOT NULL,
            payload     BLOB NOT NULL,
            received_at REAL NOT NULL
        );
        """,
    ),
    (
        5,
        """
        CREATE TABLE learned (
            subject     TEXT NOT NULL,
            name        TEXT NOT NULL,
            value       REAL,
            prior       REAL,
            cycles      INTEGER NOT NULL DEFAULT 0,
            updated_at  REAL NOT NULL,
            PRIMARY KEY (subject, name)
        ) WITHOUT ROWID;
        """,
    ),
    (
        6,
        """
        CREATE TABLE source_entities (
            source        TEXT NOT NULL,
            key           TEXT NOT NULL,
            name          TEXT NOT NULL,
            state_topic   TEXT NOT NULL,
            value_template TEXT,
            unit          TEXT,
            factor        REAL NOT NULL DEFAULT 1,
            device_class  TEXT,
            manufacturer  TEXT,
            model         TEXT,
            battery_type  TEXT,
            unsupported   TEXT,
            available     INTEGER,
            seen_at       REAL NOT NULL,
            removed_at    REAL,
            PRIMARY KEY (source, key)
        ) WITHOUT ROWID;
        CREATE TABLE source_adoptions (
            source        TEXT NOT NULL,
            key           TEXT NOT NULL,
            device_id     TEXT NOT NULL,
            consumable_id TEXT NOT NULL,
            sku           TEXT,
            capacity      REAL,
            pack_size     INTEGER,
            adopted_at    REAL NOT NULL,
            PRIMARY KEY (source, key)
        ) WITHOUT ROWID;
        CREATE TABLE source_rejects (
            source   TEXT NOT NULL,
            reason   TEXT NOT NULL,
            count    INTEGER NOT NULL,
            last_at  REAL NOT NULL,
            PRIMARY KEY (source, reason)
        ) WITHOUT ROWID;
        """,
    ),
    (
        7,
        """
        -- Urgent alerts (agent.storage.alerts): one row per alert, the device events
        -- folded into it, and every delivery attempt (the durable queue).
        CREATE TABLE alerts (
            id             INTEGER PRIMARY KEY,
            device_id      TEXT NOT NULL,
            type           TEXT NOT NULL,
            raised_at      REAL NOT NULL,
            last_event_at  REAL NOT NULL,
            events         INTEGER NOT NULL,
            acked_at       REAL,
            acked_by       TEXT
        );
        CREATE INDEX alerts_open ON alerts (acked_at, device_id, type);
        CREATE TABLE alert_events (
            device_id  TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            alert_id   INTEGER NOT NULL REFERENCES alerts(id),
            PRIMARY KEY (device_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE alert_sends (
            id        INTEGER PRIMARY KEY,
            alert_id  INTEGER NOT NULL REFERENCES alerts(id),
            contact   TEXT NOT NULL,
            at        REAL NOT NULL,
            ok        INTEGER NOT NULL,
            error     TEXT
        );
        CREATE INDEX alert_sends_by_alert ON alert_sends (alert_id);
        """,
    ),
    # Stored forecasts (the web app reads them) and the lead time each intent was planned with
    (
        8,
        """
        CREATE TABLE forecasts (
            consumable    TEXT PRIMARY KEY,
            computed_at   REAL NOT NULL,
            level         REAL,
            rate_per_day  REAL,
            p10_days      REAL,
            p50_days      REAL,
            p90_days      REAL,
            confidence    TEXT NOT NULL,
            basis         TEXT NOT NULL,
            low_signal    INTEGER NOT NULL
        ) WITHOUT ROWID;
        -- The lead time (p50, p90 days) the decision knew when it wrote the intent: the
        -- expected arrival shown before approval, before the vendor quotes a date.
        ALTER TABLE intents ADD COLUMN lead_days REAL;
        ALTER TABLE intents ADD COLUMN lead_p90_days REAL;
        """,
    ),
    (
        9,
        # Two tiers of readings (issue 21, SD-card wear). Fresh readings are appended to
        # readings_recent (a rowid table with no other index: a commit touches its last
        # page or two, whichever consumables it holds); the ingest writer folds them into
        # the keyed readings_main on a schedule, where an hour of one consumable's
        # readings fills a page or two instead of one page write per message. Readers see
        # both through the readings view (the duplicate check is the writer's, in memory).
        # readings_main is clustered by (cid, ts): the forecast's range reads walk the
        # table itself instead of the time index plus a key lookup per row; the unique
        # (cid, seq) index keeps the duplicate check.
        """
        CREATE TABLE readings_main (
            cid      INTEGER NOT NULL,
            seq      INTEGER NOT NULL,
            ts       REAL NOT NULL,
            level    REAL,
            state    TEXT,
            counter  INTEGER,
            PRIMARY KEY (cid, ts, seq)
        ) WITHOUT ROWID;
        INSERT INTO readings_main (cid, seq, ts, level, state, counter)
            SELECT cid, seq, ts, level, state, counter FROM readings ORDER BY cid, ts, seq;
        DROP TABLE readings;
        CREATE UNIQUE INDEX readings_by_seq ON readings_main (cid, seq);
        CREATE TABLE readings_recent (
            id       INTEGER PRIMARY KEY,
            cid      INTEGER NOT NULL,
            seq      INTEGER NOT NULL,
            ts       REAL NOT NULL,
            level    REAL,
            state    TEXT,
            counter  INTEGER
        );
        CREATE VIEW readings AS
            SELECT cid, seq, ts, level, state, counter FROM readings_main
            UNION ALL
            SELECT cid, seq, ts, level, state, counter FROM readings_recent;
        CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings BEGIN
            INSERT OR IGNORE INTO readings_main (cid, seq, ts, level, state, counter)
            VALUES (NEW.cid, NEW.seq, NEW.ts, NEW.level, NEW.state, NEW.counter);
        END;
        CREATE TRIGGER readings_delete INSTEAD OF DELETE ON readings BEGIN
            DELETE FROM readings_main WHERE cid = OLD.cid AND seq = OLD.seq;
            DELETE FROM readings_recent WHERE cid = OLD.cid AND seq = OLD.seq;
        END;
        """,
    ),
    (
        10,
        # What changed in the stored history (issue 21, a decision pass that does not
        # re-read it): a generation per consumable, bumped by each fold (with the oldest
        # reading it moved) and by each downsample that deleted rows (low_ts -inf: all of
        # it). cid 0 counts folds, after which readings_recent ids start again. Appends
        # to readings_recent are seen there; agent.app.history keeps the rest in memory.
        """
        CREATE TABLE history_marks (
            cid     INTEGER PRIMARY KEY,
            gen     INTEGER NOT NULL,
            low_ts  REAL NOT NULL
        );
        """,
    ),
    (
        11,
        # The folded tier packed (issue 21: the hourly fold wrote ~1,700 WAL pages into
        # the (cid, ts, seq) tree and its (cid, seq) index): one row per (hour,
        # consumable), rowid hour << 20 | cid, its readings a JSON array in time order,
        # [seq, seconds into the hour, level, counter, state] (agent.storage.packed).
        # The rows of schema 10 are packed by _pack_v10 below, in this transaction. The
        # view keeps every reader's columns; writes through it go to the recent tier
        # (the next fold packs them), deletes rewrite the reading's packed row.
        """
        DROP VIEW readings;
        ALTER TABLE readings_main RENAME TO readings_v10;
        CREATE TABLE readings_main (
            id    INTEGER PRIMARY KEY,
            rows  TEXT NOT NULL
        );
        CREATE VIEW readings AS
            SELECT m.id & 1048575 AS cid, j.value ->> 0 AS seq,
                   (m.id >> 20) * 3600.0 + (j.value ->> 1) AS ts, j.value ->> 2 AS level,
                   j.value ->> 4 AS state, j.value ->> 3 AS counter
            FROM readings_main m, json_each(m.rows) j
            UNION ALL
            SELECT cid, seq, ts, level, state, counter FROM readings_recent;
        CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings BEGIN
            INSERT INTO readings_recent (cid, seq, ts, level, state, counter)
            SELECT NEW.cid, NEW.seq, NEW.ts, NEW.level, NEW.state, NEW.counter
            WHERE NOT EXISTS (SELECT 1 FROM readings_recent
                              WHERE cid = NEW.cid AND seq = NEW.seq);
        END;
        CREATE TRIGGER readings_delete INSTEAD OF DELETE ON readings BEGIN
            UPDATE readings_main SET rows = (
                SELECT json_group_array(json(j.value)) FROM json_each(readings_main.rows) j
                WHERE j.value ->> 0 != OLD.seq)
            WHERE id = (CAST(OLD.ts / 3600 AS INTEGER) << 20 | OLD.cid);
            DELETE FROM readings_main
            WHERE id = (CAST(OLD.ts / 3600 AS INTEGER) << 20 | OLD.cid) AND rows = '[]';
            DELETE FROM readings_recent WHERE cid = OLD.cid AND seq = OLD.seq;
        END;
        """,
    ),
    (
        12,
        # An hour of a consumable in parts of at most 128 readings (issue 21: each fold
        # rewrote the whole current hour, so at 1 msg/s a device's hour grew to 3,600
        # readings rewritten every 80 s): rowid (hour << 20 | cid) << 8 | part. Schema
        # 11's rows become part 0 of their hour (every new rowid is above every old
        # one, so the renumbering never collides); the view and the delete trigger
        # decode the new rowid.
        """
        DROP VIEW readings;
        UPDATE readings_main SET id = id << 8;
        CREATE VIEW readings AS
            SELECT (m.id >> 8) & 1048575 AS cid, j.value ->> 0 AS seq,
                   (m.id >> 28) * 3600.0 + (j.value ->> 1) AS ts, j.value ->> 2 AS level,
                   j.value ->> 4 AS state, j.value ->> 3 AS counter
            FROM readings_main m, json_each(m.rows) j
            UNION ALL
            SELECT cid, seq, ts, level, state, counter FROM readings_recent;
        CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings BEGIN
            INSERT INTO readings_recent (cid, seq, ts, level, state, counter)
            SELECT NEW.cid, NEW.seq, NEW.ts, NEW.level, NEW.state, NEW.counter
            WHERE NOT EXISTS (SELECT 1 FROM readings_recent
                              WHERE cid = NEW.cid AND seq = NEW.seq);
        END;
        CREATE TRIGGER readings_delete INSTEAD OF DELETE ON readings BEGIN
            UPDATE readings_main SET rows = (
                SELECT json_group_array(json(j.value)) FROM json_each(readings_main.rows) j
                WHERE j.value ->> 0 != OLD.seq)
            WHERE id BETWEEN (CAST(OLD.ts / 3600 AS INTEGER) << 20 | OLD.cid) << 8
                         AND ((CAST(OLD.ts / 3600 AS INTEGER) << 20 | OLD.cid) << 8) | 255
              AND EXISTS (SELECT 1 FROM json_each(readings_main.rows) j
                          WHERE j.value ->> 0 = OLD.seq);
            DELETE FROM readings_main
            WHERE id BETWEEN (CAST(OLD.ts / 3600 AS INTEGER) << 20 | OLD.cid) << 8
                         AND ((CAST(OLD.ts / 3600 AS INTEGER) << 20 | OLD.cid) << 8) | 255
              AND rows = '[]';
            DELETE FROM readings_recent WHERE cid = OLD.cid AND seq = OLD.seq;
        END;
        """,
    ),
]


def _pack_v10(conn: sqlite3.Connection) -> None:
    """Schema 10's keyed rows into schema 11's packed rows (one per hour and consumable,
    rowid ``hour << 20 | cid``; step 12 splits the rowid), a few thousand at a time."""
    cur = conn.execute("SELECT cid, seq, ts, level, state, counter FROM readings_v10 "
                       "ORDER BY CAST(ts / 3600 AS INTEGER), cid")
    while batch := cur.fetchmany(20_000):
        groups: dict[int, list[Reading]] = {}
        for r in batch:
            groups.setdefault(slot(hour_of(r[2]), r[0]), []).append(r)
        for key, group in groups.items():
            old = conn.execute("SELECT rows FROM readings_main WHERE id = ?", (key,)).fetchone()
            elements = [] if old is None else json.loads(old[0])
            seen = {e[0] for e in elements}
            for r in group:
                if r[1] not in seen:
                    seen.add(r[1])
                    elements.append(element(r))
            elements.sort(key=lambda e: (e[1], e[0]))
            conn.execute("INSERT OR REPLACE INTO readings_main (id, rows) VALUES (?, ?)",
                         (key, dumps(elements)))
    conn.execute("DROP TABLE readings_v10")


# Steps in Python, run after the SQL of their version in the same transaction.
STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {11: _pack_v10}

LATEST_VERSION = MIGRATIONS[-1][0]


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit on its own)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database file."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version; returns the version reached."""
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise RuntimeError(
            f"database schema {version} is newer than this agent ({LATEST_VERSION}); upgrade"
        )
    for target, script in MIGRATIONS:
        if target <= version:
            continue
        statements = _statements(script)
        with immediate(conn):
            for statement in statements:
                conn.execute(statement)
            if target in STEPS:
                STEPS[target](conn)
            conn.execute(f"PRAGMA user_version = {int(target)}")
        version = target
    return version
