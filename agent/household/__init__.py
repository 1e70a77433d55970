"""The household side: MQTT link, dashboard views, Home Assistant discovery."""
