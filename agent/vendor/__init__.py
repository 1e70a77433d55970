"""The vendor ordering API client (``docs/vendor-api.yaml``)."""
