"""Small server-rendered SVG charts (bars and lines), for the admin dashboard.

Pure functions from a series to SVG text: no database, no JavaScript, no
external files, so a page using them works offline. Every label and
attribute is escaped. The output is a string of markup; a template has to
mark it safe to include it.

Elements carry stable classes for tests and styling: the ``<svg>`` has the
given id and class ``django-tasks-chart``, each bar is a
``<rect class="bar bar-<series>" data-label=".." data-value="..">``, each
line a ``<polyline class="line">``.
"""

import math
from dataclasses import dataclass
from html import escape

# Room around the plot area for the title and the axis labels.
TOP, RIGHT, BOTTOM, LEFT = 28, 12, 34, 44
MAX_X_LABELS = 7


@dataclass
class Series:
    name: str          # also the bar class: bar-<name>
    values: list
    colour: str


def nice_ceiling(value):
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for 0)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def number(value):
    """A tick value without a useless ``.0``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def attributes(values):
    return "".join(f' {escape(str(name))}="{escape(str(value))}"'
                   for name, value in values.items())


def frame(chart_id, title, labels, y_max, *, width, height, y_label, unit, attrs):
    """The opening ``<svg>``, title, axes, y ticks and x labels (every few bars)."""
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    svg_attrs = {"id": chart_id, "class": "django-tasks-chart", "width": width,
                 "height": height, "viewBox": f"0 0 {width} {height}", "role": "img",
                 "aria-label": title, **(attrs or {})}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg"{attributes(svg_attrs)}>',
             f"<title>{escape(title)}</title>",
             f'<text class="chart-title" x="{LEFT}" y="16" font-size="13" '
             f'font-weight="bold" fill="currentColor">{escape(title)}</text>']
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" '
                     f'y2="{y:.1f}" stroke="#ccc" stroke-width="0.5"/>')
        parts.append(f'<text class="y-tick" x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end" fill="currentColor">'
                     f'{escape(number(y_max * fraction))}{escape(unit)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
                 f'y2="{TOP + plot_h}" stroke="currentColor"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" '
                 f'y2="{TOP + plot_h}" stroke="currentColor"/>')
    if y_label:
        parts.append(f'<text class="y-label" x="4" y="{TOP - 10}" font-size="10" '
                     f'fill="currentColor">{escape(y_label)}</text>')
    if labels:
        every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
        slot = plot_w / len(labels)
        for i in range(0, len(labels), every):
            x = LEFT + slot * (i + 0.5)
            parts.append(f'<text class="x-label" x="{x:.1f}" y="{TOP + plot_h + 14}" '
                         f'font-size="10" text-anchor="middle" fill="currentColor">'
                         f"{escape(str(labels[i]))}</text>")
    return parts, plot_w, plot_h


def bar_chart(chart_id, title, labels, series, *, width=640, height=200, y_label="",
              attrs=None):
    """Bars, one slot per label; the series are drawn over each other in order
    (so a subset, like the failed among the done, shows on top of the whole)."""
    y_max = nice_ceiling(max((v for s in series for v in s.values), default=0))
    parts, plot_w, plot_h = frame(chart_id, title, labels, y_max, width=width, height=height,
                                  y_label=y_label, unit="", attrs=attrs)
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.8, 1)
    for s in series:
        for i, (label, value) in enumerate(zip(labels, s.values, strict=True)):
            bar_h = plot_h * value / y_max
            x = LEFT + slot * i + (slot - bar_w) / 2
            parts.append(
                f'<rect class="bar bar-{escape(s.name)}" x="{x:.1f}" '
                f'y="{TOP + plot_h - bar_h:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" '
                f'fill="{escape(s.colour)}" data-label="{escape(str(label))}" '
                f'data-value="{value}"><title>{escape(f"{label}: {value} {s.name}")}</title>'
                f"</rect>")
    parts.append(legend(series, width))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(chart_id, title, labels, values, *, colour="#c62828", width=640, height=200,
               y_label="", y_max=None, unit="", attrs=None):
    """A line through the values; ``None`` is a gap (nothing to measure there)."""
    known = [v for v in values if v is not None]
    y_max = y_max if y_max is not None else nice_ceiling(max(known, default=0))
    parts, plot_w, plot_h = frame(chart_id, title, labels, y_max, width=width, height=height,
                                  y_label=y_label, unit=unit, attrs=attrs)
    slot = plot_w / max(len(labels), 1)
    runs, run = [], []
    for i, value in enumerate(values):
        if value is None:
            if run:
                runs.append(run)
            run = []
            continue
        x = LEFT + slot * (i + 0.5)
        y = TOP + plot_h * (1 - min(value, y_max) / y_max)
        run.append((x, y, labels[i], value))
    if run:
        runs.append(run)
    for run in runs:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in run)
        parts.append(f'<polyline class="line" points="{points}" fill="none" '
                     f'stroke="{escape(colour)}" stroke-width="1.5"/>')
        for x, y, label, value in run:
            parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2" '
                         f'fill="{escape(colour)}" data-label="{escape(str(label))}" '
                         f'data-value="{value:g}"><title>'
                         f'{escape(f"{label}: {value:g}{unit}")}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def legend(series, width):
    parts, x = [], width - RIGHT
    for s in reversed(series):
        x -= 8 + 7 * len(s.name) + 16
        parts.append(f'<rect class="legend" x="{x}" y="7" width="10" height="10" '
                     f'fill="{escape(s.colour)}"/><text x="{x + 14}" y="16" font-size="11" '
                     f'fill="currentColor">{escape(s.name)}</text>')
    return "".join(parts)
