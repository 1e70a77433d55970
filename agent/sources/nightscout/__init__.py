"""Nightscout (CGM and pump data over REST) as a source of wearable consumables."""
