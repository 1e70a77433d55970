"""Simulated households: scenarios and the live publisher."""
