# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status page's chart: backup size and duration over time as an inline SVG (bars for the size,
a line with points for the duration, oldest on the left), every text HTML-escaped. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report.escape import esc
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes

WIDTH = 720
HEIGHT = 260
LEFT = 70
RIGHT = 70
TOP = 20
BOTTOM = 50
SIZE_COLOUR = "#3b7dd8"
DURATION_COLOUR = "#e07b24"


def _seconds(value):
    return "%.1f s" % value if value < 600 else "%.0f min" % (value / 60.0)


def chart(points):
    """The SVG of ``points``: a list of dicts with ``time`` (ISO text, for the axis), ``name``,
    ``size_bytes`` and ``duration_seconds`` (None when unknown), oldest first. An empty string for
    no points."""
    if not points:
        return ""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    max_size = max([p["size_bytes"] or 0 for p in points] + [1])
    durations = [p["duration_seconds"] for p in points if p.get("duration_seconds") is not None]
    max_duration = max(durations + [0.001])
    slot = plot_w / float(len(points))
    bar_w = max(2.0, min(40.0, slot * 0.6))
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" '
             'role="img" aria-label="backup size and duration over time">' % (WIDTH, HEIGHT, WIDTH, HEIGHT),
             '<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>' % (WIDTH, HEIGHT)]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d0d4da" stroke-width="1"/>'
                     % (LEFT, y, LEFT + plot_w, y))
        parts.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="%s">%s</text>'
                     % (LEFT - 6, y + 4, SIZE_COLOUR, esc(human_bytes(max_size * fraction))))
        if durations:
            parts.append('<text x="%d" y="%.1f" font-size="11" text-anchor="start" fill="%s">%s</text>'
                         % (LEFT + plot_w + 6, y + 4, DURATION_COLOUR, esc(_seconds(max_duration * fraction))))
    line = []
    for index, point in enumerate(points):
        centre = LEFT + slot * (index + 0.5)
        height = plot_h * (point["size_bytes"] or 0) / float(max_size)
        parts.append('<rect class="size-bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                     '<title>%s: %s</title></rect>'
                     % (centre - bar_w / 2, TOP + plot_h - height, bar_w, max(height, 0.5), SIZE_COLOUR,
                        esc(point["name"]), esc(human_bytes(point["size_bytes"] or 0))))
        if point.get("duration_seconds") is not None:
            y = TOP + plot_h * (1 - point["duration_seconds"] / max_duration)
            line.append((centre, y, point))
    if len(line) > 1:
        parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                     % (DURATION_COLOUR, " ".join("%.1f,%.1f" % (x, y) for x, y, _p in line)))
    for x, y, point in line:
        parts.append('<circle class="duration-point" cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %s</title>'
                     '</circle>' % (x, y, DURATION_COLOUR, esc(point["name"]), esc(_seconds(point["duration_seconds"]))))
    # The first and last dates under the axis (more would overlap on a narrow page).
    labels = [(0, "start"), (len(points) - 1, "end")] if len(points) > 1 else [(0, "middle")]
    for index, anchor in labels:
        x = LEFT + slot * (index + 0.5)
        parts.append('<text x="%.1f" y="%d" font-size="11" text-anchor="%s" fill="#444">%s</text>'
                     % (x, TOP + plot_h + 16, anchor, esc(points[index]["time"][:16].replace("T", " "))))
    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888" stroke-width="1"/>'
                 % (LEFT, TOP + plot_h, LEFT + plot_w, TOP + plot_h))
    legend_y = HEIGHT - 12
    parts.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="12" '
                 'fill="#222">size</text>' % (LEFT, legend_y - 10, SIZE_COLOUR, LEFT + 16, legend_y))
    parts.append('<circle cx="%d" cy="%d" r="5" fill="%s"/><text x="%d" y="%d" font-size="12" fill="#222">'
                 'duration</text>' % (LEFT + 76, legend_y - 4, DURATION_COLOUR, LEFT + 86, legend_y))
    parts.append("</svg>")
    return "".join(parts)
