"""The dashboard's SVG charts, without a database: bars, lines, axes, escaping."""

import re

import pytest

from django_tasks import svgcharts


def test_a_bar_chart_has_one_bar_per_value_per_series_and_its_attributes():
    chart = svgcharts.bar_chart(
        "c1", "Done per minute", ["10:00", "10:01", "10:02"],
        [svgcharts.Series("done", [4, 0, 7], "#080"),
         svgcharts.Series("failed", [1, 0, 2], "#800")],
        attrs={"data-total": 11})
    assert chart.startswith('<svg xmlns="http://www.w3.org/2000/svg" id="c1"')
    assert chart.endswith("</svg>")
    assert 'data-total="11"' in chart
    assert re.findall(r'class="bar bar-done"[^>]*data-value="(\d+)"', chart) == ["4", "0", "7"]
    assert re.findall(r'class="bar bar-failed"[^>]*data-value="(\d+)"', chart) == ["1", "0", "2"]
    assert "<title>Done per minute</title>" in chart
    assert re.findall(r'class="y-tick"[^>]*>([^<]*)<', chart) == ["0", "5", "10"]
    assert re.findall(r'class="x-label"[^>]*>([^<]*)<', chart) == ["10:00", "10:01", "10:02"]


def test_bar_heights_are_proportional_to_the_values():
    chart = svgcharts.bar_chart("c", "t", ["a", "b"], [svgcharts.Series("s", [10, 5], "#000")])
    heights = [float(h) for h in re.findall(r'class="bar bar-s"[^>]*height="([\d.]+)"', chart)]
    assert heights[0] == pytest.approx(2 * heights[1]) and heights[0] > 0


def test_chart_labels_titles_and_attributes_are_escaped():
    evil = '<script>alert("x")</script>&'
    chart = svgcharts.bar_chart(evil, evil, [evil], [svgcharts.Series("done", [1], '"red')],
                                y_label=evil, attrs={"data-note": evil})
    assert "<script>" not in chart and 'alert("x")' not in chart
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in chart
    assert 'fill="&quot;red"' in chart
    line = svgcharts.line_chart("l", evil, [evil], [50.0], unit=evil)
    assert "<script>" not in line


def test_many_labels_are_thinned_on_the_x_axis():
    labels = [f"{i:02d}" for i in range(60)]
    chart = svgcharts.bar_chart("c", "t", labels, [svgcharts.Series("s", [1] * 60, "#000")])
    shown = re.findall(r'class="x-label"[^>]*>([^<]*)<', chart)
    assert len(re.findall(r'class="bar bar-s"', chart)) == 60
    assert 2 <= len(shown) <= svgcharts.MAX_X_LABELS and shown[0] == "00"


def test_a_line_chart_breaks_at_missing_values():
    chart = svgcharts.line_chart("rate", "Failure rate", ["a", "b", "c", "d"],
                                 [50.0, None, 0.0, 25.0], y_max=100, unit="%")
    assert len(re.findall(r"<polyline ", chart)) == 2
    assert re.findall(r'class="point"[^>]*data-value="([^"]+)"', chart) == ["50", "0", "25"]
    assert re.findall(r'class="y-tick"[^>]*>([^<]*)<', chart) == ["0%", "50%", "100%"]


@pytest.mark.parametrize("value, ceiling", [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20),
                                            (200, 200), (201, 500), (0.3, 0.5)])
def test_nice_ceiling(value, ceiling):
    assert svgcharts.nice_ceiling(value) == pytest.approx(ceiling)
