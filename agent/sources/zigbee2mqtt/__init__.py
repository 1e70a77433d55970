"""Zigbee2MQTT preset: battery devices from the retained bridge device list."""
