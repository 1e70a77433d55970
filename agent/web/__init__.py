"""The household web app (``replenish web``): a separate process from the agent.

``app`` builds the Starlette app, ``pages`` holds the handlers, ``data`` the read-only
queries, ``auth`` password, sessions and rate limits, ``plot`` the SVG, ``server`` uvicorn.
"""
