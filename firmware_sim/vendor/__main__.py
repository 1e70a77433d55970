"""``python -m firmware_sim.vendor``: serve the sandbox until SIGTERM."""

import sys

from firmware_sim.vendor.sandbox import main

sys.exit(main())
