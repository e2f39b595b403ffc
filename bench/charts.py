"""Chart libraries for bot/admin/charts.py, measured on the township's month (run by hand, one
library per process so import cost and memory are its own):

    .venv/bin/python bench/charts.py pygal|matplotlib|leather

Needs matplotlib and leather installed by hand (they are not dependencies): it prints import time,
the median render time of each chart over 30 runs, the SVG size and the peak resident memory.
"""

from __future__ import annotations

import io
import resource
import statistics
import sys
import time
from collections.abc import Callable

from bot.storage.disputes import TYPES

NAMES = ["观音寺", "西竹园", "东竹园", "老庄", "柳树岭", "黄土岭", "大坪", "寺沟", "九龙潭", "焦山", "龙潭"]
VILLAGES = [f"{n}村" for n in NAMES]
STACK = {t: [(i * 7 + j * 3) % 4 for i in range(len(VILLAGES))] for j, t in enumerate(TYPES)}
FOUND = [3, 0, 2, 5, 1, 0, 4, 2, 1, 0, 2]
MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]
TREND = {
    "发现": [5, 7, 4, 9, 6, 8, 5, 7, 10, 6, 4, 8],
    "化解": [4, 6, 5, 7, 6, 7, 5, 6, 8, 6, 5, 7],
    "三长联动": [1, 0, 1, 2, 0, 1, 1, 0, 2, 1, 0, 1],
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pygal_charts() -> dict[str, Callable[[], str]]:
    from bot.admin import charts

    return {
        "stacked": lambda: charts.stacked_bar("各村纠纷类型", VILLAGES, STACK).svg,
        "bar": lambda: charts.bar("各村发现", VILLAGES, FOUND).svg,
        "line": lambda: charts.line("全年走势", MONTHS, TREND).svg,
    }


def matplotlib_charts() -> dict[str, Callable[[], str]]:
    import matplotlib

    matplotlib.use("svg")
    matplotlib.rcParams["font.sans-serif"] = ["WenQuanYi Micro Hei"]
    matplotlib.rcParams["svg.fonttype"] = "none"
    from matplotlib.figure import Figure

    def save(fig: Figure) -> str:
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        return buffer.getvalue()

    def stacked() -> str:
        fig = Figure(figsize=(7.2, 5.5))
        ax = fig.subplots()
        left = [0.0] * len(VILLAGES)
        for name, values in STACK.items():
            ax.barh(VILLAGES, values, left=left, label=name)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
        return save(fig)

    def bar() -> str:
        fig = Figure(figsize=(7.2, 3.4))
        fig.subplots().barh(VILLAGES, FOUND)
        return save(fig)

    def line() -> str:
        fig = Figure(figsize=(7.2, 3.2))
        ax = fig.subplots()
        for name, values in TREND.items():
            ax.plot(MONTHS, values, label=name, marker="o")
        ax.legend()
        return save(fig)

    return {"stacked": stacked, "bar": bar, "line": line}


def leather_charts() -> dict[str, Callable[[], str]]:
    import leather

    def bar() -> str:
        chart = leather.Chart("各村发现")
        chart.add_bars(list(zip(FOUND, VILLAGES, strict=True)))
        buffer = io.StringIO()
        chart.to_svg(buffer, width=720, height=340)
        return buffer.getvalue()

    def line() -> str:
        chart = leather.Chart("全年走势")
        for name, values in TREND.items():
            chart.add_line(list(zip(range(1, 13), values, strict=True)), name=name)
        buffer = io.StringIO()
        chart.to_svg(buffer, width=720, height=320)
        return buffer.getvalue()

    return {"bar": bar, "line": line}  # leather has no stacked bars


def main() -> None:
    library = sys.argv[1] if len(sys.argv) > 1 else "pygal"
    before = rss_mb()
    started = time.perf_counter()
    charts = {"pygal": pygal_charts, "matplotlib": matplotlib_charts, "leather": leather_charts}[library]()
    first = {name: make() for name, make in charts.items()}  # imports happen on first use
    imported = time.perf_counter() - started
    print(f"{library}: import + first render {imported:.3f} s")
    for name, make in charts.items():
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            make()
            times.append(time.perf_counter() - t0)
        svg = first[name]
        print(
            f"  {name:8s} median {statistics.median(times) * 1000:6.1f} ms  SVG {len(svg.encode()) / 1024:5.1f} KB"
            f"  style attributes {svg.count(' style=')}  <script> {svg.count('<script')}"
        )
    print(f"  peak RSS +{rss_mb() - before:.0f} MB (from {before:.0f} MB)")


if __name__ == "__main__":
    main()
