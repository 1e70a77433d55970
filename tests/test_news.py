"""What counts as news for the writer's commit window (agent.mqtt.news)."""

from __future__ import annotations

import json

from agent.mqtt.judge import Inbound
from agent.mqtt.news import STATE_NEWS_EVERY_S, News

TOPIC = "replenish/v1/devices/fridge-1/state"


def state(seq: int, s: str | None) -> Inbound:
    milk: dict[str, object] = {"id": "milk", "level": 500}
    if s is not None:
        milk["state"] = s
    body = {"device_id": "fridge-1", "seq": seq, "consumables": [milk]}
    return Inbound(seq, 1, TOPIC, json.dumps(body).encode(), 0.0)


def test_a_flapping_device_is_news_once_per_interval() -> None:
    now = [1_000.0]
    news = News(clock=lambda: now[0])
    assert news.closes(state(0, None))  # first message
    flips = []
    for seq in range(1, 41):  # LOW/OK at every message, one a minute for 40 minutes
        now[0] += 60.0
        flips.append(news.closes(state(seq, "low" if seq % 2 else None)))
    assert sum(flips) == -(-40 * 60 // int(STATE_NEWS_EVERY_S))  # one per interval
    assert flips[0]  # the first change goes at once


def test_a_low_days_after_the_last_change_is_news() -> None:
    now = [0.0]
    news = News(clock=lambda: now[0])
    news.closes(state(0, None))
    now[0] += 3 * 86_400.0
    assert news.closes(state(1, "low"))
    now[0] += 5 * 86_400.0
    assert news.closes(state(2, None))  # replaced
    assert not news.closes(state(3, None))  # unchanged


def test_events_are_always_news() -> None:
    news = News(clock=lambda: 0.0)
    event = Inbound(1, 1, "replenish/v1/devices/wear-1/events", b"{}", 0.0)
    assert news.closes(event) and news.closes(event)
