"""``replenish sources list|adopt|drop|rejects``: foreign devices read from the broker."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from agent.config import Settings
from agent.domain import ConsumableKey
from agent.errors import ConsentError
from agent.sources.reader import adopt
from agent.storage.sources import SourceStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sources", help="foreign devices (HA discovery, Zigbee2MQTT ...)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="entities found on the broker")
    listing.add_argument("--all", action="store_true", help="also non-candidates, removed")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    ad = actions.add_parser("adopt", help="read an entity as a consumable: SOURCE:KEY")
    ad.add_argument("entity", metavar="SOURCE:KEY")
    ad.add_argument("--sku", help="the vendor SKU that refills it")
    ad.add_argument("--capacity", type=float, help="a full pack, in the entity's unit")
    ad.add_argument("--pack-size", type=int, help="items per order (e.g. 10 cells)")
    ad.add_argument("--consumable-id", help="default: the battery type, else 'level'")
    drop = actions.add_parser("drop", help="stop reading an adopted entity: SOURCE:KEY")
    drop.add_argument("entity", metavar="SOURCE:KEY")
    actions.add_parser("rejects", help="payloads that did not parse, per source and reason")
    parser.set_defaults(func=run)


def _split(entity: str) -> tuple[str, str]:
    source, sep, key = entity.partition(":")
    if not sep or not key:
        raise ConsentError(f"expected SOURCE:KEY as shown by 'sources list', got {entity!r}")
    return source, key


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    with SourceStore(settings.storage.path) as db:
        if args.action == "list":
            adopted = {(a.source, a.key): a for a in db.adoptions()}
            rows = [{"entity": f"{e.source}:{e.key}", "name": e.name, "unit": e.unit,
                     "battery_type": e.battery_type, "model": e.model,
                     "available": e.available, "candidate": e.candidate,
                     "unsupported": e.unsupported, "removed": e.removed,
                     "adopted": (e.source, e.key) in adopted,
                     "sku": getattr(adopted.get((e.source, e.key)), "sku", None)}
                    for e in db.entities(include_removed=args.all)
                    if args.all or e.candidate or e.unsupported or (e.source, e.key) in adopted]
            if args.json:
                print(json.dumps(rows, indent=2))
                return 0
            for r in rows:
                mark = "*" if r["adopted"] else " "
                why = f"  unsupported: {r['unsupported']}" if r["unsupported"] else ""
                print(f"{mark} {r['entity']:<48} {str(r['name'])[:40]:<40} {r['unit'] or '-'}{why}")
            if not rows:
                print("(nothing found on the broker yet; is the agent running?)")
        elif args.action == "adopt":
            source, key = _split(args.entity)
            a = adopt(db, source, key, sku=args.sku, capacity=args.capacity,
                      pack_size=args.pack_size, consumable_id=args.consumable_id,
                      now=time.time(),
                      battery_skus=settings.sources.zigbee2mqtt.battery_skus)
            print(f"adopted {args.entity} as {ConsumableKey(a.device_id, a.consumable_id)}")
        elif args.action == "drop":
            source, key = _split(args.entity)
            if not db.drop(source, key):
                raise ConsentError(f"{args.entity} is not adopted")
            print(f"dropped {args.entity}; its readings are kept")
        else:
            for rej in db.rejects():
                print(f"{rej.source:<6} {rej.reason:<40} {rej.count}")
    return 0
