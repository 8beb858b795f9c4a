"""Small bar charts as inline SVG, drawn on the server (no script, no external asset)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup


def _short(n: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{n:g}"


def bar_chart(
    points: Sequence[tuple[date, int]], label: str, width: int = 560, height: int = 150
) -> Markup:
    """One bar per day with a max gridline; each bar's tooltip has the exact value."""
    left, bottom, top = 44, 18, 8
    plot_w, plot_h = width - left - 4, height - bottom - top
    peak = max((v for _, v in points), default=0) or 1
    step = plot_w / max(len(points), 1)
    bar_w = max(step - 1.5, 1.0)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line class="grid" x1="{left}" y1="{top}" x2="{width - 4}" y2="{top}"/>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 4}"'
        f' y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{_short(peak)}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (day, value) in enumerate(points):
        h = plot_h * value / peak
        x = left + i * step
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}"'
            f' height="{h:.1f}"><title>{day:%a %d %b}: {value:,}</title></rect>'
        )
    if points:
        for i in (0, len(points) // 2, len(points) - 1):
            day = points[i][0]
            x = left + i * step + bar_w / 2
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{height - 4}" text-anchor="middle">'
                f"{day:%d %b}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or numeric
