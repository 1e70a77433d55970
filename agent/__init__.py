"""replenish-agent: forecasts consumable depletion at the edge and orders within consent."""

__version__ = "0.1.0"
