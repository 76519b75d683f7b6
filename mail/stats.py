"""Figures for the admin dashboard: mail per day and the moderation queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from mail.models import Message
from webhooks.models import Endpoint

QUEUE_CAP = 10_000


def daily_counts(days: int = 30) -> dict[str, Any]:
    today = timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    rows = (
        Message.objects.filter(received_at__date__gte=start)
        .annotate(day=TruncDate("received_at"))
        .values("day", "direction")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[dt.date, str], int] = {(r["day"], r["direction"]): r["n"] for r in rows}
    out = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        out.append(
            {
                "day": day.isoformat(),
                "received": counts.get((day, "inbound"), 0),
                "sent": counts.get((day, "outbound"), 0),
            }
        )
    return {"days": days, "series": out}


def _chart(series: list[dict[str, Any]], *, width: int = 560, height: int = 176) -> dict[str, Any]:
    """Bars in a ``width`` x ``height`` viewBox, which the page scales to its panel, with the
    day under every seventh bar counting back from today (the last bar)."""
    top = max([1] + [max(d["received"], d["sent"]) for d in series])
    base = height - 18  # room for the date labels under the axis
    slot = width / len(series)
    w = max(1, int(slot / 2) - 1)
    bars, labels = [], []
    for i, d in enumerate(series):
        rh = round((base - 16) * d["received"] / top)
        sh = round((base - 16) * d["sent"] / top)
        x = round(i * slot)
        bars.append(
            {
                **d,
                "x": x,
                "x2": x + w,
                "w": w,
                "received_h": rh,
                "received_y": base - rh,
                "sent_h": sh,
                "sent_y": base - sh,
            }
        )
        if (len(series) - 1 - i) % 7 == 0:
            day = dt.date.fromisoformat(d["day"])
            labels.append({"text": f"{day:%b} {day.day}", **_label_anchor(x + w, width)})
    return {
        "width": width,
        "height": height,
        "base": base,
        "label_y": height - 4,
        "bars": bars,
        "labels": labels,
        "max": top,
    }


def _label_anchor(centre: float, width: int, half: int = 22) -> dict[str, Any]:
    """Centred under its bar, but never past either edge of the chart."""
    if centre < half:
        return {"x": 0, "anchor": "start"}
    if centre > width - half:
        return {"x": width, "anchor": "end"}
    return {"x": round(centre), "anchor": "middle"}


def dashboard() -> dict[str, Any]:
    cached: dict[str, Any] | None = cache.get("admin-dashboard")
    if cached is not None:
        return cached
    data = daily_counts()
    queue = Message.objects.in_moderation_queue()[: QUEUE_CAP + 1].count()
    result = {
        **_chart(data["series"]),
        "days": data["days"],
        "total_received": sum(d["received"] for d in data["series"]),
        "total_sent": sum(d["sent"] for d in data["series"]),
        "queue": min(queue, QUEUE_CAP),
        "queue_capped": queue > QUEUE_CAP,
        "held": Message.objects.filter(disposition="held")[:QUEUE_CAP].count(),
        "quarantined": Message.objects.filter(disposition="quarantined")[:QUEUE_CAP].count(),
        "failing_webhooks": _failing_webhooks(),
    }
    cache.set("admin-dashboard", result, 30)
    return result


def _failing_webhooks() -> int:
    return Endpoint.objects.filter(Q(enabled=False) | Q(failing_since__isnull=False)).count()
