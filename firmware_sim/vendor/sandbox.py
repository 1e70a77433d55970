"""Vendor sandbox: a real HTTP ordering API on a simulated clock, with fault knobs.

The public API is documented in ``docs/vendor-api.yaml``; the state lives in
:mod:`firmware_sim.vendor.state`, the HTTP surface in :mod:`firmware_sim.vendor.http`.

In tests::

    with VendorSandbox(token="t0k") as sandbox:
        client = VendorClient(sandbox.url, "t0k")
        ...
        sandbox.faults.commit_then_500 = True
        sandbox.advance(timedelta(days=3))   # orders move on, on_delivered fires
        assert len(sandbox.orders()) == 1

From a shell: ``replenish-sim vendor --port 8080 --token-file token.txt``; other
languages drive the clock and faults through the admin surface under ``/_sandbox/``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from firmware_sim.vendor.catalog import DEFAULT_CATALOG, CatalogEntry, load_catalog
from firmware_sim.vendor.faults import Clock, Faults, SimClock
from firmware_sim.vendor.http import SandboxServer
from firmware_sim.vendor.orders import RecordedOrder
from firmware_sim.vendor.profile import PROFILES, Profile, get_profile
from firmware_sim.vendor.state import DEFAULT_CANCEL_WINDOW, SandboxState

if TYPE_CHECKING:
    from firmware_sim.household.scenario import Household

__all__ = [
    "CatalogEntry",
    "Faults",
    "RecordedOrder",
    "SimClock",
    "VendorSandbox",
    "add_arguments",
    "catalog_for",
    "deliver_to",
    "main",
]

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "sandbox-token"


class VendorSandbox:
    """The sandbox server plus the Python handles tests use to drive and inspect it.

    ``clock`` defaults to a frozen :class:`SimClock`; pass any object with ``now()`` to
    let a household simulation own the time, and call :meth:`tick` after moving it so
    deliveries reach ``on_delivered``. The hook runs on the thread that noticed the
    delivery (a request thread or the caller of :meth:`advance`), one order at a time.

    ``profile="minimal"`` serves only what ``docs/vendor-api.yaml`` promises (see
    :mod:`firmware_sim.vendor.profile`); ``commit_delay_s`` overrides how long it holds
    an order POST before committing (also settable later on the instance).
    """

    def __init__(
        self,
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        catalog: Iterable[CatalogEntry] | None = None,
        clock: Clock | None = None,
        *,
        host: str = "127.0.0.1",
        cancel_window: timedelta = DEFAULT_CANCEL_WINDOW,
        key_retention: timedelta | None = None,
        seed: int = 0,
        on_delivered: Callable[[RecordedOrder], None] | None = None,
        profile: str | Profile = "full",
        commit_delay_s: float | None = None,
    ) -> None:
        if not token or any(c.isspace() for c in token):
            raise ValueError("token must be non-empty without whitespace")
        self._address = (host, port)
        self._token = token
        self.state = SandboxState(
            DEFAULT_CATALOG if catalog is None else catalog,
            SimClock() if clock is None else clock,
            cancel_window=cancel_window,
            key_retention=key_retention,
            seed=seed,
            profile=get_profile(profile) if isinstance(profile, str) else profile,
        )
        if commit_delay_s is not None:
            self.commit_delay_s = commit_delay_s
        self.state.on_delivered = on_delivered
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> VendorSandbox:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = SandboxServer(self._address, self.state, self._token)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to one interval
            name="vendor-sandbox",
            daemon=True,
        )
        self._thread.start()
        log.info("vendor sandbox on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving; dripping or sleeping responses are cut short."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VendorSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- handles for tests -------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def profile(self) -> Profile:
        return self.state.profile

    @property
    def commit_delay_s(self) -> float:
        """Real seconds each order POST is held in flight before it commits."""
        return self.state.commit_delay_s

    @commit_delay_s.setter
    def commit_delay_s(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("commit_delay_s must be >= 0")
        self.state.commit_delay_s = seconds

    @property
    def on_delivered(self) -> Callable[[RecordedOrder], None] | None:
        return self.state.on_delivered

    @on_delivered.setter
    def on_delivered(self, hook: Callable[[RecordedOrder], None] | None) -> None:
        self.state.on_delivered = hook

    def now(self) -> datetime:
        """The sandbox's simulated time."""
        return self.state.clock.now()

    def orders(self) -> list[RecordedOrder]:
        """Every order recorded so far (test ones included), oldest first."""
        return self.state.orders()

    def advance(self, delta: timedelta) -> list[RecordedOrder]:
        """Move the simulated clock; returns the orders delivered meanwhile."""
        return self.state.advance(delta)

    def set_time(self, when: datetime) -> list[RecordedOrder]:
        """Jump the simulated clock forward to ``when``; returns the orders delivered."""
        return self.state.set_time(when)

    def tick(self) -> list[RecordedOrder]:
        """Catch up with an externally driven clock (deliveries, key pruning)."""
        return self.state.tick()


def catalog_for(
    household: Household, base: Iterable[CatalogEntry] = DEFAULT_CATALOG
) -> tuple[CatalogEntry, ...]:
    """``base`` with the household's lead times, plus a generic entry for unknown SKUs.

    So a closed-loop run delivers on the scenario's lead-time model and every SKU a
    device names can be ordered.
    """
    entries = {e.sku: e for e in base}
    for dev in household.devices:
        for stock in dev.stocks.values():
            lead = household.lead_times.get(stock.sku, household.lead_time)
            known = entries.get(stock.sku)
            if known is None:
                known = CatalogEntry(
                    sku=stock.sku,
                    name=stock.sku,
                    price=Decimal("10.00"),
                    pack_size=max(1, round(stock.pack_size)),
                    unit=str(stock.unit.value),
                )
            entries[stock.sku] = replace(
                known, lead_time_days=lead.mean_days, lead_time_sd_days=lead.sd_days
            )
    return tuple(entries.values())


def deliver_to(household: Household) -> Callable[[RecordedOrder], None]:
    """An ``on_delivered`` hook that refills the household's device for each delivery.

    ``quantity`` packs go to the consumable whose SKU the order shipped; the household
    puts them in after its own put-away delay (and only once someone is home).
    """

    def hook(order: RecordedOrder) -> None:
        if order.delivered_at is None:
            return
        device, consumable = household.find_sku(order.sku)
        household.deliver(device.device_id, consumable, order.quantity, order.delivered_at)

    return hook


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``replenish-sim vendor`` (for the simulator's CLI to reuse)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument(
        "--token-file",
        type=Path,
        required=True,
        help="file holding the bearer token clients must send",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=None,
        help="catalog file (.toml or .json); default: built-in catalog",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (0 freezes the clock)",
    )
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=None,
        help="simulated start time (ISO 8601, default now)",
    )
    parser.add_argument("--cancel-window-h", type=float, default=24.0)
    parser.add_argument(
        "--key-retention-h",
        type=float,
        default=None,
        help="hours idempotency keys are kept (default 24; the spec's minimum)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="full",
        help="full: every field, instant commits; minimal: only what the spec promises "
        "(optional fields missing or null, slow commits, keys kept the minimum)",
    )
    parser.add_argument(
        "--commit-delay-s",
        type=float,
        default=None,
        help="real seconds an order POST is held before it commits "
        "(default: 0, or 20 with --profile minimal)",
    )
    parser.add_argument("--seed", type=int, default=0)


def main(args: Sequence[str] | argparse.Namespace | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; prints its URL on the first line of stdout."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="replenish-sim vendor", description=__doc__)
        add_arguments(parser)
        args = parser.parse_args(args)
    try:
        token = args.token_file.read_text().strip()
        catalog = load_catalog(args.catalog) if args.catalog else DEFAULT_CATALOG
        start = args.start or datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        sandbox = VendorSandbox(
            args.port,
            token,
            catalog,
            SimClock(start, speed=args.speed),
            host=args.host,
            cancel_window=timedelta(hours=args.cancel_window_h),
            key_retention=None
            if args.key_retention_h is None
            else timedelta(hours=args.key_retention_h),
            seed=args.seed,
            profile=args.profile,
            commit_delay_s=args.commit_delay_s,
        )
        sandbox.start()
    except (OSError, ValueError) as err:
        # Never echo the token file's content; the error names the problem only.
        sys.stderr.write(f"replenish-sim vendor: {type(err).__name__}: {err}\n")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sys.stdout.write(f"{sandbox.url}\n")
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
