"""The first two schema versions (shipped; never edited): devices, consumables, readings,
rejects, events, the ledger and its audit chain. :mod:`agent.storage.migrations` appends
every later version to these."""

from __future__ import annotations

# Timestamps are epoch seconds (REAL): compact, sortable and free of time-zone text.
BASE_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE devices (
            device_id   TEXT PRIMARY KEY,
            kind        TEXT NOT NULL,
            first_seen  REAL NOT NULL,
            last_seen   REAL NOT NULL,
            last_seq    INTEGER NOT NULL,
            online      INTEGER,
            status_at   REAL,
            fw          TEXT
        );
        CREATE TABLE consumables (
            cid            INTEGER PRIMARY KEY,
            device_id      TEXT NOT NULL REFERENCES devices(device_id),
            consumable_id  TEXT NOT NULL,
            sku            TEXT,
            unit           TEXT NOT NULL,
            capacity       REAL,
            last_level     REAL,
            last_state     TEXT,
            last_ts        REAL,
            last_counters  TEXT,
            UNIQUE (device_id, consumable_id)
        );
        -- One row per consumable per message; the key also deduplicates replays.
        CREATE TABLE readings (
            cid      INTEGER NOT NULL,
            seq      INTEGER NOT NULL,
            ts       REAL NOT NULL,
            level    REAL,
            state    TEXT,
            counter  INTEGER,
            PRIMARY KEY (cid, seq)
        ) WITHOUT ROWID;
        CREATE INDEX readings_by_time ON readings (cid, ts);
        CREATE TABLE events (
            device_id      TEXT NOT NULL,
            seq            INTEGER NOT NULL,
            ts             REAL NOT NULL,
            type           TEXT NOT NULL,
            consumable_id  TEXT,
            received_at    REAL NOT NULL,
            PRIMARY KEY (device_id, seq)
        ) WITHOUT ROWID;
        -- Bounded sample of rejected messages (payload truncated) for support staff.
        CREATE TABLE rejects (
            id           INTEGER PRIMARY KEY,
            device_id    TEXT NOT NULL,
            reason       TEXT NOT NULL,
            topic        TEXT NOT NULL,
            payload_head BLOB,
            received_at  REAL NOT NULL
        );
        CREATE TABLE reject_counts (
            device_id  TEXT NOT NULL,
            reason     TEXT NOT NULL,
            count      INTEGER NOT NULL,
            last_at    REAL NOT NULL,
            PRIMARY KEY (device_id, reason)
        ) WITHOUT ROWID;
        """,
    ),
    (
        2,
        """
        -- Consent per consumable ("device_id/consumable_id"); the mandate fields matter
        -- for mode 'auto'. Money is kept as decimal text, never float.
        CREATE TABLE consent (
            consumable      TEXT PRIMARY KEY,
            mode            TEXT NOT NULL,
            vendor          TEXT,
            skus            TEXT NOT NULL DEFAULT '[]',
            max_unit_price  TEXT,
            max_quantity    INTEGER,
            monthly_budget  TEXT,
            expires_at      REAL,
            audit_id        INTEGER NOT NULL,
            updated_at      REAL NOT NULL
        );
        -- Append-only, hash-chained; the triggers refuse edits made through SQL.
        CREATE TABLE audit (
            id          INTEGER PRIMARY KEY,
            ts          REAL NOT NULL,
            kind        TEXT NOT NULL,
            consumable  TEXT,
            body        TEXT NOT NULL,
            prev_hash   TEXT NOT NULL,
            hash        TEXT NOT NULL
        );
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
        CREATE TABLE away_periods (
            id       INTEGER PRIMARY KEY,
            start    REAL NOT NULL,
            end      REAL NOT NULL,
            label    TEXT,
            source   TEXT NOT NULL,
            uid      TEXT UNIQUE
        );
        -- Purchase intents are the outbox: the row and its idempotency key are durable
        -- before the first vendor call.
        CREATE TABLE intents (
            id                 INTEGER PRIMARY KEY,
            consumable         TEXT NOT NULL,
            vendor             TEXT NOT NULL,
            sku                TEXT NOT NULL,
            name               TEXT,
            quantity           INTEGER NOT NULL,
            pack_size          INTEGER NOT NULL,
            unit_price         TEXT NOT NULL,
            currency           TEXT NOT NULL,
            mode               TEXT NOT NULL,
            state              TEXT NOT NULL,
            idem_key           TEXT NOT NULL UNIQUE,
            audit_id           INTEGER,
            reason             TEXT,
            created_at         REAL NOT NULL,
            send_after         REAL,
            next_attempt_at    REAL,
            attempts           INTEGER NOT NULL DEFAULT 0,
            first_sent_at      REAL,
            last_sent_at       REAL,
            order_id           TEXT,
            order_status       TEXT,
            total              TEXT,
            cancel_until       REAL,
            expected_delivery  REAL,
            delivered_at       REAL,
            updated_at         REAL NOT NULL
        );
        CREATE INDEX intents_by_state ON intents (state, next_attempt_at);
        CREATE INDEX intents_by_consumable ON intents (consumable, state);
        CREATE TABLE reminders (
            id          INTEGER PRIMARY KEY,
            consumable  TEXT NOT NULL,
            ts          REAL NOT NULL,
            kind        TEXT NOT NULL,
            message     TEXT NOT NULL
        );
        CREATE TABLE feedback (
            id          INTEGER PRIMARY KEY,
            intent_id   INTEGER NOT NULL REFERENCES intents(id),
            kind        TEXT NOT NULL,
            ts          REAL NOT NULL,
            audit_id    INTEGER NOT NULL
        );
        CREATE TABLE blocked_skus (
            consumable  TEXT NOT NULL,
            sku         TEXT NOT NULL,
            ts          REAL NOT NULL,
            PRIMARY KEY (consumable, sku)
        ) WITHOUT ROWID;
        """,
    ),
]
