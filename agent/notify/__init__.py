"""Notification channels for urgent alerts (caregivers), opt-in per household."""
