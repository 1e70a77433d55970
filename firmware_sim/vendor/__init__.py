"""The vendor sandbox: a real HTTP server implementing ``docs/vendor-api.yaml``.

``catalog`` the products, ``orders`` and ``state`` the order book and idempotency keys,
``faults`` the injected faults and the simulated clock, ``http`` the server, ``sandbox``
the object tests and the demo drive.
"""

from firmware_sim.vendor.faults import SimClock
from firmware_sim.vendor.sandbox import VendorSandbox, add_arguments, catalog_for, deliver_to, main

__all__ = ["SimClock", "VendorSandbox", "add_arguments", "catalog_for", "deliver_to", "main"]
