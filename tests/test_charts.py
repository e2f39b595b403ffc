"""bot/admin/charts.py: SVG charts that a CSP-locked, script-free back-office can show and print."""

from __future__ import annotations

import base64

from bot.admin import charts

VILLAGES = ["观音寺村", "西竹园村", "东竹园村"]


def test_the_three_kinds_render_as_script_free_svg_images() -> None:
    made = [
        charts.bar("各村发现", VILLAGES, [3, 0, 1]),
        charts.stacked_bar("各村类型", VILLAGES, {"邻里纠纷": [1, 0, 1], "合同纠纷": [2, 0, 0], "其他纠纷": [0, 0, 0]}),
        charts.line("走势", ["26-01", "26-02"], {"发现": [4, 2], "化解": [1, 3]}),
    ]
    for chart in made:
        assert chart.svg.startswith("<svg") and "<script" not in chart.svg and "<desc" not in chart.svg
        assert "http://" not in chart.svg.replace("http://www.w3.org", "")  # nothing fetched from elsewhere
        img = str(chart.img())
        assert img.startswith('<img class="chart" src="data:image/svg+xml;base64,')
        encoded = img.split("base64,", 1)[1].split('"', 1)[0]
        assert base64.b64decode(encoded).decode("utf-8") == chart.svg
    stacked = made[1]
    assert "邻里纠纷" in stacked.svg and "其他纠纷" not in stacked.svg  # an all-zero category is left out
    assert stacked.alt == "各村类型。邻里纠纷：观音寺村1、东竹园村1；合同纠纷：观音寺村2"


def test_an_empty_chart_says_so_in_chinese_and_alt_text_is_escaped() -> None:
    empty = charts.stacked_bar("本月", VILLAGES, {"邻里纠纷": [0, 0, 0]})
    assert "没有数据" in empty.svg and "No data" not in empty.svg
    hostile = charts.bar('<b>"x"</b>', VILLAGES, [1, 1, 1])
    assert '<b>"x"</b>' not in str(hostile.img()) and "&lt;b&gt;" in str(hostile.img())


def test_pygal_leaves_no_legacy_import_hook_behind() -> None:
    """pygal's map-plugin finder has no find_spec: left in sys.meta_path, every later failed optional
    import anywhere would warn (and fail under filterwarnings = error)."""
    import sys

    charts.bar("x", VILLAGES, [1, 2, 3])
    assert not [f for f in sys.meta_path if type(f).__name__ == "PluginImportFixer"]


def test_a_legend_of_two_rows_stays_inside_the_picture() -> None:
    """Three series in two legend columns make two rows: the second used to be drawn past the bottom."""
    import re

    for chart in (
        charts.line("近12个月 工单", ["26-01", "26-02"], {"新工单": [4, 2], "已解决": [1, 3], "紧急": [0, 1]}),
        charts.stacked_bar("预约", ["法律咨询", "人民调解"], {"到了": [2, 1], "没来": [1, 0], "未登记": [1, 1]}),
    ):
        found = re.search(r'<g transform="translate\([\d.]+, ([\d.]+)\)" class="legends">', chart.svg)
        assert found is not None
        legend_y = float(found.group(1))
        last_row = legend_y + 18 + 12  # the second row's box: 18 px below the first, 12 px tall
        assert last_row <= chart.height and f'viewBox="0 0 {charts.WIDTH} {chart.height}"' in chart.svg
        assert f'height="{chart.height}"' in str(chart.img())


def test_axis_labels_are_round_numbers() -> None:
    from bot.admin.charts import _ticks

    assert _ticks(0) == {}
    assert _ticks(5) == {"y_labels": [0, 1, 2, 3, 4, 5]}
    assert _ticks(174) == {"y_labels": [0, 50, 100, 150, 200]}
    assert _ticks(240) == {"y_labels": [0, 50, 100, 150, 200, 250]}
