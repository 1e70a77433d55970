"""The only SQL: connection and transactions, migrations, readings, the ledger."""
