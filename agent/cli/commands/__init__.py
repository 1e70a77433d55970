"""Subcommands of ``replenish``: one module each, discovered by :mod:`agent.cli.main`.

A module defines ``register(sub)`` that adds its subparser and sets ``func`` to a handler
``handler(args, settings_loader) -> int``.
"""
