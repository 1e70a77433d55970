"""Simulated devices: stock and usage models, links, faults, recorded fixtures."""
