"""Server-side SVG charts for reports (bar, stacked bar, line): no CDN, no script, printable.

Use::

    from bot.admin import charts

    chart = charts.stacked_bar("各村纠纷类型", ["观音寺村", "西竹园村"], {"邻里纠纷": [2, 1], "合同纠纷": [0, 3]})
    # in a template: {{ chart.img() }}  — an <img> with the SVG inline as a data: URI, and alt text

**Why pygal, drawn into an inline ``data:`` image** — measured with ``bench/charts.py`` on this
2-core machine (shared with other work, so ±30 %), on the township's month: 11 villages × 11
categories stacked, 11 villages as bars, 12 months × 3 lines:

    library            import + 1st render   render stack / bar / line   SVG stack / bar / line   peak RSS
    pygal 3.1.3        0.08–0.35 s           27–45 / 4–9 / 7–12 ms       48 / 13 / 19 KB          +13 MB
    matplotlib 3.11.2  1.6 s                 322 / 77 / 95 ms            37 / 11 / 18 KB          +74 MB
    leather 0.4.1      0.09 s                — / 1 / 6 ms                — / 6 / 4 KB             +4 MB

leather has no stacked bars, so it cannot draw the category chart. matplotlib is ten times slower,
pulls in numpy, needs font configuration for Chinese (it warns about every missing glyph) and
writes ``style="…"`` attributes. pygal draws all three, has a print-friendly look (values written
on the bars, legends below, so nothing depends on hovering), and is a small pure-Python package.

The back-office CSP (``style-src 'self'; script-src 'self'``) forbids inline ``<style>`` and
``style`` attributes, which both pygal and matplotlib use for colours, and pygal always adds a
``<script>`` with its tooltip config. So the chart is embedded as ``<img src="data:image/svg+xml;…">``:
an SVG *image* never runs scripts and is not styled by the page, the page's CSP allows ``data:``
images, and the picture still travels inside the HTML (printing, saving a page, no extra request).
The ``<script>`` element is removed anyway. Charts scale to the width of a 390-px phone
(``.chart`` is ``max-width: 100%``) and print on A4 at their natural size. Alt text says what the
chart shows; every chart on a page sits next to a table with the same numbers.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

FONT = "'WenQuanYi Micro Hei', 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif"
#: distinguishable on screen and in greyscale print (dark to light), blue first
COLORS = (
    "#0b5cad",
    "#e07b00",
    "#1a7f37",
    "#c62828",
    "#6f42c1",
    "#00838f",
    "#8d6e63",
    "#ad1457",
    "#5d6d2f",
    "#546e7a",
    "#f9a825",
    "#2e7d32",
)
#: natural width: readable on a 390-px phone without scaling down much, ~12 cm on A4
WIDTH = 440
LEGEND_COLUMNS = 2


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    alt: str
    width: int
    height: int

    @property
    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode("utf-8")).decode("ascii")

    def img(self) -> Markup:
        """The chart as an ``<img>`` for a template (alt text escaped)."""
        # the src is base64 (no quotes or markup can appear in it) and the alt text is escaped
        return Markup(  # noqa: S704
            f'<img class="chart" src="{self.data_uri}" alt="{escape(self.alt)}" '
            f'width="{self.width}" height="{self.height}">'
        )


def _pygal() -> Any:
    """pygal, imported on first use. On import it appends a legacy ``sys.meta_path`` finder (for its
    map plugins, unused here) that has no ``find_spec``: on Python 3.11 every later import that reaches
    it — any optional import of any library — warns (ImportWarning). It is taken out again."""
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]
    return pygal


def _style() -> Any:
    from pygal.style import Style

    _pygal()

    return Style(
        background="white",
        plot_background="white",
        foreground="#1f2328",
        foreground_strong="#1f2328",
        foreground_subtle="#656d76",
        font_family=FONT,
        label_font_size=12,
        major_label_font_size=12,
        value_font_size=11,
        value_label_font_size=11,
        legend_font_size=12,
        title_font_size=14,
        no_data_font_size=16,
        colors=COLORS,
        opacity="1",
        opacity_hover="1",
    )


def _config(height: int, **extra: Any) -> dict[str, Any]:
    return {
        "style": _style(),
        "width": WIDTH,
        "height": height,
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": True,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": LEGEND_COLUMNS,
        "print_values": True,
        "print_zeroes": False,
        "margin": 12,
        "no_data_text": "没有数据",
        "spacing": 10,
        "truncate_label": -1,
        "truncate_legend": -1,
        **extra,
    }


def _fit_legend(tree: Any, height: int) -> int:
    """pygal keeps room for one row of a legend at the bottom: a second row (three or more series in two
    columns) was drawn past the picture's edge and cut off. Grow the picture to the legend's last row."""
    legends = tree.xpath("//*[local-name()='g' and @class='legends']")
    found = re.search(r"translate\(\s*[-\d.]+[ ,]+([-\d.]+)\s*\)", legends[0].get("transform", "")) if legends else None
    if found is None:
        return height
    rows = [float(r.get("y", 0)) + float(r.get("height", 0)) for r in legends[0].xpath(".//*[local-name()='rect']")]
    bottom = int(float(found.group(1)) + max(rows, default=0) + 10)
    if bottom <= height:
        return height
    tree.set("height", str(bottom))
    tree.set("viewBox", f"0 0 {WIDTH} {bottom}")
    for background in tree.xpath(f"//*[local-name()='rect' and @class='background' and @width='{WIDTH}']"):
        background.set("height", str(bottom))
    return bottom


def _render(chart: Any, title: str, alt: str, height: int) -> Chart:
    from lxml import etree

    tree = chart.render_tree()
    # no script runs in an image: drop pygal's tooltip config and the per-point tooltip texts
    for node in tree.xpath("//*[local-name()='script' or local-name()='desc'] | //comment()"):
        node.getparent().remove(node)
    height = _fit_legend(tree, height)
    svg = etree.tostring(tree, encoding="unicode")
    return Chart(title, svg, alt, WIDTH, height)


def _alt(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> str:
    parts = []
    for name, values in series.items():
        shown = [f"{label}{value:g}" for label, value in zip(labels, values, strict=True) if value]
        parts.append(f"{name}：{'、'.join(shown) if shown else '无'}")
    return f"{title}。" + "；".join(parts)


def _ticks(top: float) -> dict[str, list[int]]:
    """Whole-number value labels (counts of cases), at most about six; none for an empty chart
    (pygal then writes "No data" — and fails on fixed labels without data)."""
    if top <= 0:
        return {}
    top = int(top + 0.999)
    step = next(n * 10**e for e in range(12) for n in (1, 2, 5) if n * 10**e * 6 >= top)  # 1, 2, 5, 10, 20 …
    return {"y_labels": list(range(0, top + step, step))}


def _label_room(labels: Sequence[str]) -> dict[str, int]:
    """pygal sizes axis labels for Latin text; Chinese characters are about twice as wide."""
    longest = max((len(label) for label in labels), default=0)
    return {"margin_left": 12 + 7 * longest}


def bar(title: str, labels: Sequence[str], values: Sequence[float], *, series: str = "数量") -> Chart:
    """One bar per label, top to bottom in the given order (horizontal: long labels stay readable)."""
    pygal = _pygal()

    height = max(160, 70 + 24 * len(labels))
    chart = pygal.HorizontalBar(
        **_config(height, show_legend=False, title=title, **_ticks(max(values, default=0)), **_label_room(labels))
    )
    chart.x_labels = list(reversed(labels))  # pygal draws the first label at the bottom
    chart.add(series, [v or None for v in reversed(values)])
    return _render(chart, title, _alt(title, labels, {series: values}), height)


def stacked_bar(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> Chart:
    """One horizontal bar per label, made of one segment per series (e.g. villages × categories)."""
    pygal = _pygal()

    shown = {name: values for name, values in series.items() if any(values)}
    legend_rows = (len(shown) + LEGEND_COLUMNS - 1) // LEGEND_COLUMNS
    height = max(180, 80 + 24 * len(labels) + 26 * legend_rows)
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    chart = pygal.HorizontalStackedBar(
        **_config(height, title=title, **_ticks(max(totals, default=0)), **_label_room(labels))
    )
    chart.x_labels = list(reversed(labels))
    for name, values in shown.items():
        chart.add(name, [v or None for v in reversed(values)])
    return _render(chart, title, _alt(title, labels, shown or series), height)


def line(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> Chart:
    """One line per series over ``labels`` (e.g. months)."""
    pygal = _pygal()

    height = 300
    top = max((max(v, default=0) for v in series.values()), default=0)
    chart = pygal.Line(
        **_config(
            height,
            title=title,
            x_label_rotation=-45,
            dots_size=3,
            print_values=False,
            **(_ticks(top) or {"y_labels": [0, 1]}),
        )
    )
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _render(chart, title, _alt(title, labels, series), height)
