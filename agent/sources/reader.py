"""Foreign devices on the household broker, read-only: discovery, Zigbee2MQTT, mappings.

paho hands messages over through :class:`agent.mqtt.ingest.ForeignRoute`; ``deliver``
only queues them (paho's thread must not wait on SQLite). :meth:`ForeignReader.drain`
runs on the scheduler: discovery configs and the Zigbee2MQTT device list become
``source_entities`` rows (``replenish sources list`` shows them), and a state message of
an *adopted* entity or an explicit mapping becomes a reading of a synthetic device
(``ha-…``, ``z2m-…``, ``map-…``) through the same :meth:`Store.write_batch` as device
readings, so forecasting, refills (a fresh battery is a level jump) and ordering treat
it like any device. A payload that does not parse is counted per source and reason. The
agent never publishes on any of these topics.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from agent.config import BatterySkuSettings, MappingSettings, SourcesSettings
from agent.domain import DeviceKind, Unit
from agent.errors import ConsentError, PayloadError
from agent.sources.ha_discovery.config import UNITS, parse_config, parse_topic
from agent.sources.ha_discovery.template import Template, UnsupportedTemplate, parse_template
from agent.sources.valetudo import preset as valetudo
from agent.sources.zigbee2mqtt import bridge
from agent.storage.sources import Adoption, SourceEntity, SourceStore
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage

log = logging.getLogger(__name__)

HA = "ha"
MAPPING = "map"
QUEUE_MAX = 10_000
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def synthetic_device_id(source: str, key: str) -> str:
    """A device id for a foreign entity: readable, unique, within the id pattern."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    readable = _UNSAFE.sub("_", key).strip("_")[:40] or "x"
    return f"{source}-{readable}-{digest}"


@dataclass(slots=True, frozen=True)
class _Reading:
    """How one subscribed state topic becomes a reading."""

    source: str
    device_id: str
    consumable_id: str
    template: Template
    unit: Unit
    factor: float
    sku: str | None
    capacity: float | None
    group: str | None = None  # battery type: also feeds the per-type consumable


BATTERY_GROUP_DEVICE = "z2m-batteries"


def group_consumable(battery_type: str) -> str:
    """The consumable id of a battery type's group (``z2m-batteries/<this>``)."""
    return _UNSAFE.sub("_", battery_type).strip("_")[:64] or "battery"


class ForeignReader:
    """Queue in paho's thread, process on the scheduler's."""

    def __init__(self, settings: SourcesSettings, db_path: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.db_path = db_path
        self.clock = clock
        self.queue: queue.Queue[tuple[str, bytes, bool]] = queue.Queue(QUEUE_MAX)
        self.dropped = 0
        self._readings: dict[str, list[_Reading]] = {}
        self._mappings = [(m, parse_template(m.value_template)) for m in settings.mappings]
        self._buttons = [(b, parse_template(b.value_template)) for b in settings.buttons]
        # (consumable, quantity, topic) of button presses since the last take_presses().
        self.presses: list[tuple[str, int | None, str]] = []
        self._z2m_names: dict[str, str] = {}  # friendly name -> ieee
        # battery type -> device id -> latest level: the per-type consumable is the lowest
        # (it runs out first; replacing that cell is a jump to the next-lowest).
        self._groups: dict[str, dict[str, float]] = {}
        self._dirty: dict[str, str | None] = {}  # groups with new levels -> their SKU
        self._seq = 0
        # Homie attributes ($datatype, $unit) per (robot, consumable), and a value that came
        # before them.
        self._valetudo_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self._valetudo_held: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.subscribe: Callable[[list[str]], None] = lambda topics: None
        self._static = self._static_topics()
        # Every state topic ever subscribed: after a rename the old one stays subscribed
        # until reconnect, and its messages must not fall through to household commands.
        self._ever: set[str] = set()
        self.refresh_adoptions()

    # ---- paho's thread ------------------------------------------------------------

    def _static_topics(self) -> list[str]:
        out: list[str] = []
        if self.settings.discovery:
            p = self.settings.discovery_prefix
            out += [f"{p}/+/+/config", f"{p}/+/+/+/config"]
        z = self.settings.zigbee2mqtt
        if z.enabled:
            out += [f"{z.prefix}/bridge/devices", f"{z.prefix}/+/availability"]
        if self.settings.valetudo is not None:
            out.append(valetudo.topic_filter(self.settings.valetudo.prefix))
        return (out + [m.topic for m in self.settings.mappings]
                + [b.topic for b in self.settings.buttons])

    def topics(self) -> list[str]:
        return self._static + sorted(self._readings)

    def wants(self, topic: str) -> bool:
        return topic in self._ever or any(mqtt.topic_matches_sub(f, topic)
                                          for f in self._static)

    def deliver(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            self.queue.put_nowait((topic, payload, retained))
        except queue.Full:
            self.dropped += 1

    # ---- the scheduler's thread ---------------------------------------------------

    def refresh_adoptions(self) -> list[str]:
        """Re-read adoptions (the CLI adds them); returns state topics newly subscribed."""
        with SourceStore(self.db_path) as db:
            entities = {(e.source, e.key): e for e in db.entities()}
            readings: dict[str, list[_Reading]] = {}
            for a in db.adoptions():
                e = entities.get((a.source, a.key))
                if e is None or e.unit is None:
                    continue
                try:
                    tpl = parse_template(e.value_template)
                except UnsupportedTemplate:
                    continue
                readings.setdefault(e.state_topic, []).append(_Reading(
                    a.source, a.device_id, a.consumable_id, tpl, Unit(e.unit), e.factor,
                    a.sku, a.capacity,
                    e.battery_type if e.source == bridge.SOURCE else None))
            self._z2m_names = {e.state_topic.rsplit("/", 1)[-1]: e.key
                               for e in entities.values() if e.source == bridge.SOURCE}
        new = sorted(set(readings) - set(self._readings))
        self._ever |= set(readings)
        self._readings = readings
        if new:
            self.subscribe(new)
        return new

    def drain(self, limit: int = 5_000) -> int:
        """Process what paho queued; returns how many messages were handled."""
        items: list[tuple[str, bytes, bool]] = []
        while len(items) < limit:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if not items:
            return 0
        # Homie attributes ($unit) before values: a robot's retained topics arrive together.
        items.sort(key=lambda item: "/$" not in item[0])
        now = self.clock()
        rejects: Counter[tuple[str, str]] = Counter()
        states: list[StateMessage] = []
        changed = False
        with SourceStore(self.db_path) as db:
            for topic, payload, retained in items:
                try:
                    if not retained:  # a retained press is history, never a new tap
                        self._press(topic, payload)
                    changed |= self._config(db, topic, payload, now)
                    states += self._states(topic, payload, now, rejects)
                    states += self._valetudo(topic, payload, now)
                except PayloadError as err:
                    rejects[(self._source_of(topic), str(err))] += 1
            db.count_rejects(dict(rejects), now)
        states += self._group_states(now)
        if states:
            with Store(self.db_path) as store:
                store.write_batch(states, received_at=now)
        if changed:
            self.refresh_adoptions()
        for (source, reason), n in rejects.items():
            log.warning("source.reject source=%s reason=%s count=%d", source, reason, n)
        return len(items)

    def _press(self, topic: str, payload: bytes) -> None:
        for button, tpl in self._buttons:
            if button.topic == topic and tpl.text(payload) == button.press:
                self.presses.append((button.order_now, button.quantity, topic))

    def take_presses(self) -> list[tuple[str, int | None, str]]:
        """Button presses since the last call (the app turns each into "order now")."""
        out, self.presses = self.presses, []
        return out

    def _valetudo(self, topic: str, payload: bytes, now: float) -> list[StateMessage]:
        """The Valetudo preset: a consumable's value (or its Homie ``$unit``)."""
        v = self.settings.valetudo
        vt = valetudo.parse_topic(topic, v.prefix) if v is not None else None
        if v is None or vt is None:
            return []
        key = (vt.robot, vt.consumable)
        attrs = self._valetudo_attrs.setdefault(key, {})
        if vt.attribute is not None:
            attrs[vt.attribute] = payload.decode("utf-8", "replace").strip()
            held = self._valetudo_held.pop(key, None) if vt.attribute == "$datatype" else None
            return [] if held is None else self._valetudo(held[0], held[1], now)
        if not payload:
            return []  # a retained value cleared
        if "$datatype" not in attrs and not payload.startswith(b"P"):
            # Seconds or percent? Homie's $datatype comes with $unit (retained): hold the
            # value until they are in, never read a percentage as seconds.
            self._valetudo_held[key] = (topic, payload)
            return []
        level, unit = valetudo.parse_value(payload, attrs.get("$unit"))
        life = v.life_hours.get(vt.consumable, valetudo.DEFAULT_LIFE_HOURS.get(vt.consumable))
        capacity = 100.0 if unit is Unit.PERCENT else (life / 24 if life else None)
        try:
            return [StateMessage(
                device_id=f"{valetudo.SOURCE}-{vt.robot}"[:64], seq=self._next_seq(now),
                ts=datetime.fromtimestamp(now, UTC), kind=DeviceKind.OTHER,
                consumables=[Consumable(id=vt.consumable, level=level, unit=unit,
                                        sku=v.skus.get(vt.consumable), capacity=capacity)])]
        except ValidationError:
            raise PayloadError("implausible level") from None

    def _source_of(self, topic: str) -> str:
        v = self.settings.valetudo
        if v is not None and topic.startswith(v.prefix + "/"):
            return valetudo.SOURCE
        if topic.startswith(self.settings.zigbee2mqtt.prefix + "/"):
            return bridge.SOURCE
        if topic.startswith(self.settings.discovery_prefix + "/"):
            return HA
        return MAPPING

    def _config(self, db: SourceStore, topic: str, payload: bytes, now: float) -> bool:
        """Discovery configs and the Z2M device list; True when entities changed."""
        z = self.settings.zigbee2mqtt
        if z.enabled and topic == f"{z.prefix}/bridge/devices":
            devices = bridge.parse_devices(payload, z.battery_types)
            for dev in devices:
                db.upsert_entity(SourceEntity(**bridge.entity_fields(dev, z.prefix)), now)  # type: ignore[arg-type]
            present = {d.ieee for d in devices}
            for e in db.entities(bridge.SOURCE):
                if e.key not in present:
                    db.mark_removed(bridge.SOURCE, e.key, now)
            return True
        if z.enabled and topic.startswith(z.prefix + "/") and topic.endswith("/availability"):
            name = topic[len(z.prefix) + 1:-len("/availability")]
            if name in self._z2m_names:
                db.set_available(bridge.SOURCE, self._z2m_names[name],
                                 bridge.parse_availability(payload))
            return False
        if not self.settings.discovery:
            return False
        dt = parse_topic(topic, self.settings.discovery_prefix)
        if dt is None:
            return False
        if (dt.node_id or "").startswith("replenish_"):
            return False  # the agent's own entities for the household
        entity = parse_config(dt, payload)
        if entity is None:
            return db.mark_removed(HA, dt.key, now)
        db.upsert_entity(SourceEntity(
            HA, entity.key, entity.name, entity.state_topic, entity.value_template,
            entity.unit.value if entity.unit else None, entity.factor, entity.device_class,
            entity.manufacturer, entity.model, None, entity.unsupported), now)
        return True

    def _states(self, topic: str, payload: bytes, now: float,
                rejects: Counter[tuple[str, str]]) -> list[StateMessage]:
        out = []
        todo = list(self._readings.get(topic, []))
        for m, tpl in self._mappings:
            if mqtt.topic_matches_sub(m.topic, topic):
                unit, factor = UNITS[m.unit]
                todo.append(_Reading(MAPPING, synthetic_device_id(MAPPING, f"{m.name}:{topic}"),
                                     m.consumable_id, tpl, unit, factor, m.sku, m.capacity))
        for r in todo:
            try:
                level = r.template.number(payload) * r.factor
                out.append(StateMessage(
                    device_id=r.device_id, seq=self._next_seq(now),
                    ts=datetime.fromtimestamp(now, UTC), kind=DeviceKind.OTHER,
                    consumables=[Consumable(id=r.consumable_id, level=max(level, 0.0),
                                            unit=r.unit, sku=r.sku, capacity=r.capacity)]))
            except PayloadError as err:
                rejects[(r.source, str(err))] += 1
                continue
            except ValidationError:
                rejects[(r.source, "implausible level")] += 1
                continue
            if r.group is not None:
                self._groups.setdefault(r.group, {})[r.device_id] = max(level, 0.0)
                self._dirty[r.group] = r.sku
        return out

    def _group_states(self, now: float) -> list[StateMessage]:
        """The battery-type consumables: one order per type, before the first cell dies."""
        out = []
        skus = self.settings.zigbee2mqtt.battery_skus
        for group, sku in self._dirty.items():
            cid = group_consumable(group)
            sku = skus[group].sku if group in skus else sku
            out.append(StateMessage(
                device_id=BATTERY_GROUP_DEVICE, seq=self._next_seq(now),
                ts=datetime.fromtimestamp(now, UTC), kind=DeviceKind.OTHER,
                consumables=[Consumable(id=cid, level=min(self._groups[group].values()),
                                        unit=Unit.PERCENT, sku=sku)]))
        self._dirty.clear()
        return out

    def _next_seq(self, now: float) -> int:
        """Increasing per reader: several messages of one device in one drain all count."""
        self._seq = max(self._seq + 1, int(now * 1000))
        return self._seq


def adopt(db: SourceStore, source: str, key: str, *, sku: str | None, capacity: float | None,
          pack_size: int | None, consumable_id: str | None, now: float,
          battery_skus: Mapping[str, BatterySkuSettings] | None = None) -> Adoption:
    """Adopt a candidate entity as a consumable; ConsentError when it cannot be read."""
    e = db.entity(source, key)
    if e is None or e.removed:
        raise ConsentError(f"no entity {source}:{key} (see 'replenish sources list')")
    if e.unsupported:
        raise ConsentError(f"{source}:{key} cannot be read: {e.unsupported}")
    if e.unit is None:
        raise ConsentError(f"{source}:{key} is not a consumable level ({e.device_class})")
    if sku is None and e.battery_type and battery_skus and e.battery_type in battery_skus:
        sku = battery_skus[e.battery_type].sku  # the configured product for this cell
    cid = consumable_id or (e.battery_type if e.battery_type else "level")
    cid = _UNSAFE.sub("_", cid).strip("_")[:64] or "level"
    a = Adoption(source, key, synthetic_device_id(source, key), cid, sku, capacity, pack_size)
    db.adopt(a, now)
    return a


__all__ = ["ForeignReader", "MappingSettings", "adopt", "group_consumable",
           "synthetic_device_id"]
