"""Valetudo preset: a robot vacuum's consumables from its own MQTT topics (no HA discovery)."""
