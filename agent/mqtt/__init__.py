"""The paho adapter: one MQTT connection and the ingest writer behind it."""
