"""A server-rendered SVG of one consumable: level history, forecast band, planned order.

Plain strings, no plotting library at run time. Every number is formatted by us and every
label goes through :func:`html.escape`, so nothing a device sends can end up as markup.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from agent.storage.forecasts import StoredForecast

W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 30


def _f(x: float) -> str:
    return f"{x:.1f}"


def level_svg(history: list[tuple[datetime, float]], fc: StoredForecast | None, now: datetime,
              unit: str, arrival: datetime | None, title: str) -> str:
    """The plot as an ``<svg>`` element (text, safe to embed)."""
    start = history[0][0] if history else now - timedelta(days=30)
    horizon_days = 30.0
    if fc is not None and fc.time_to_empty_days[2] is not None:
        horizon_days = min(max(fc.time_to_empty_days[2] * 1.1, 7.0), 365.0)
    end = now + timedelta(days=horizon_days)
    if arrival is not None and arrival < start:
        arrival = None  # a vendor estimate from before the plotted history: not drawable
    if arrival is not None and arrival > end:
        end = arrival + timedelta(days=1)
    top = max([lv for _, lv in history] + [fc.level or 0.0 if fc else 0.0, 1.0])
    top = 100.0 if unit == "percent" and top <= 100 else top * 1.05
    span = max((end - start).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return LEFT + (W - LEFT - RIGHT) * (t - start).total_seconds() / span

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - max(0.0, min(v, top)) / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
             f'class="plot" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
             f'height="{H - TOP - BOTTOM}" class="frame"/>']
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        parts.append(f'<text x="{LEFT - 4}" y="{_f(y(v) + 4)}" class="axis" '
                     f'text-anchor="end">{v:.0f}</text>')
    parts.append(f'<text x="{LEFT}" y="{H - 8}" class="axis">{start:%Y-%m-%d}</text>')
    parts.append(f'<text x="{W - RIGHT}" y="{H - 8}" class="axis" '
                 f'text-anchor="end">{end:%Y-%m-%d}</text>')
    if fc is not None and fc.level is not None:
        # The band starts where the agent's last pass stood (at most minutes ago).
        at = fc.computed_at
        p10, p50, p90 = fc.time_to_empty_days
        if p10 is not None and p90 is not None:
            band = [(at, fc.level), (at + timedelta(days=p10), 0.0),
                    (at + timedelta(days=p90), 0.0)]
            pts = " ".join(f"{_f(x(t))},{_f(y(v))}" for t, v in band)
            parts.append(f'<polygon points="{pts}" class="band"/>')
        if p50 is not None:
            t50 = at + timedelta(days=p50)
            parts.append(f'<line x1="{_f(x(at))}" y1="{_f(y(fc.level))}" x2="{_f(x(t50))}" '
                         f'y2="{_f(y(0))}" class="median"/>')
    if history:
        pts = " ".join(f"{_f(x(t))},{_f(y(v))}" for t, v in history)
        parts.append(f'<polyline points="{pts}" class="history"/>')
    parts.append(f'<line x1="{_f(x(now))}" y1="{TOP}" x2="{_f(x(now))}" y2="{H - BOTTOM}" '
                 'class="now"/>')
    if arrival is not None:
        xa = _f(x(arrival))
        parts.append(f'<line x1="{xa}" y1="{TOP}" x2="{xa}" y2="{H - BOTTOM}" class="arrival"/>')
        parts.append(f'<text x="{xa}" y="{TOP + 12}" class="axis" text-anchor="middle">'
                     f"order arrives {arrival:%m-%d}</text>")
    parts.append("</svg>")
    return "".join(parts)
