"""Away periods: typed by the household or imported from calendars."""
