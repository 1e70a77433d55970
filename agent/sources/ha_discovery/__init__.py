"""Home Assistant MQTT discovery configs on the household broker, read-only."""
