"""Wiring only: the service, the planner pass, the dispatcher pass."""
