"""Small inline SVG charts: no script, no network, readable without a browser plugin. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

ACCENT = "#c0392b"
MUTED = "#7f8c8d"
BAR = "#2c6fbb"
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} {extra}>{escape(text)}</text>'


def column_chart(
    labels: Sequence[str],
    bars: Sequence[float],
    line: Sequence[float] | None = None,
    *,
    label: str,
    bar_name: str,
    line_name: str = "",
    line_max: float = 100.0,
    width: int = 760,
    height: int = 220,
) -> str:
    """Columns (left axis) with an optional line on a fixed 0..line_max right axis."""
    left, right, top, bottom = 40, 40, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(bars, default=0), 1)
    step = plot_w / max(len(bars), 1)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{MUTED}"/>'
    ]
    for i, value in enumerate(bars):
        h = plot_h * value / peak
        x = left + i * step + step * 0.15
        body.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{BAR}"><title>{escape(labels[i])}: {value:g} {escape(bar_name)}</title></rect>'
        )
    every = max(1, len(labels) // 10)
    for i in range(0, len(labels), every):
        body.append(_text(left + i * step + step / 2, height - bottom + 14, labels[i], "middle"))
    body.append(_text(left - 4, top + 4, f"{peak:g}", "end"))
    body.append(_text(left - 4, top + plot_h, "0", "end"))
    body.append(_text(left, height - 6, f"■ {bar_name}", extra=f'fill="{BAR}"'))
    if line is not None and len(line):
        points = " ".join(
            f"{left + i * step + step / 2:.1f},{top + plot_h - plot_h * min(v, line_max) / line_max:.1f}"
            for i, v in enumerate(line)
        )
        body.append(f'<polyline points="{points}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
        body.append(_text(left + plot_w + 4, top + 4, f"{line_max:g}", extra=f'fill="{ACCENT}"'))
        body.append(_text(left + plot_w + 4, top + plot_h, "0", extra=f'fill="{ACCENT}"'))
        body.append(_text(left + 200, height - 6, f"— {line_name}", extra=f'fill="{ACCENT}"'))
    return _svg(width, height, body, label)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    label: str,
    maximum: float | None = None,
    unit: str = "",
    width: int = 620,
    colours: Sequence[str] | None = None,
) -> str:
    """Horizontal bars, one row per label, the value printed at the end of each bar."""
    row, left, right = 22, 250, 60
    height = row * len(values) + 10
    peak = maximum or max(max(values, default=0), 1)
    body = []
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        w = (width - left - right) * min(value, peak) / peak
        colour = colours[i] if colours else BAR
        shown = name if len(name) <= 40 else name[:39] + "…"
        body.append(_text(left - 6, y + 14, shown, "end"))
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{colour}"/>')
        body.append(
            _text(
                left + w + 4, y + 14, f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"
            )
        )
    return _svg(width, height, body, label)


def heatmap(grid: Sequence[Sequence[int]], row_labels: Sequence[str], *, label: str, width: int = 560) -> str:
    """Rows x 24 hour columns, darker for more events; zero cells stay white."""
    left, top, cell_h = 40, 18, 20
    cell_w = (width - left - 10) / 24
    peak = max((max(r) for r in grid), default=0) or 1
    body = [_text(left + h * cell_w + cell_w / 2, top - 5, f"{h:02d}", "middle") for h in range(0, 24, 3)]
    for r, values in enumerate(grid):
        y = top + r * cell_h
        body.append(_text(left - 6, y + 14, row_labels[r], "end"))
        for h, count in enumerate(values):
            share = count / peak
            fill = "#ffffff" if count == 0 else f"rgba(44,111,187,{0.15 + 0.85 * share:.2f})"
            body.append(
                f'<rect x="{left + h * cell_w:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                f'fill="{fill}" stroke="#e5e5e5"><title>{escape(row_labels[r])} {h:02d}:00: {count}</title></rect>'
            )
    return _svg(width, top + cell_h * len(grid) + 6, body, label)


def hour_strip(hours: Sequence[int], *, label: str, width: int = 300) -> str:
    """One row of 24 hour cells: the account's usual hours at a glance."""
    return heatmap([list(hours)], [""], label=label, width=width)
