"""The ``replenish`` command line: :mod:`agent.cli.main` and one module per command."""
