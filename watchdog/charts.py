"""A small PNG chart of an alert's metric: where people would rather look than read.

Public plugin API: ``chart_png(alert)`` gives the PNG bytes of the rule's
metric for the alert's participant over its recent samples (``Alert.values``),
with the threshold as a dashed line and the firing sample marked; notifiers
attach it (the Slack thread, the email body). It needs the optional extra
``videosdk-watchdog[charts]`` (matplotlib); without it, or with
``VIDEOSDK_WATCHDOG_CHARTS=off`` in the environment, it returns None and the
notifier sends the sparkline alone. ``report_chart_png(report)`` draws a call report's
quality over the call (``Report.chart``: one line a participant); without it a report is
text alone.
"""

from __future__ import annotations

import io
import logging
import os
import threading

from watchdog.alerts import Alert, Report, ReportSeries, format_number

__all__ = ["MIN_VALUES", "SWITCH", "available", "chart_png", "report_chart_png"]

log = logging.getLogger(__name__)

SWITCH = "VIDEOSDK_WATCHDOG_CHARTS"
MIN_VALUES = 2  # one point is not a trend
_lock = threading.Lock()  # matplotlib's pyplot state is global; render one chart at a time


def available() -> bool:
    """True when charts can be drawn: the extra is installed and not switched off."""
    if os.environ.get(SWITCH, "").lower() in {"off", "0", "false", "no"}:
        return False
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def chart_png(alert: Alert, width: float = 6.0, height: float = 2.4) -> bytes | None:
    """The chart as PNG bytes, or None (no matplotlib, switched off, too few values)."""
    if len(alert.values) < MIN_VALUES or not available():
        return None
    try:
        return _render(alert, width, height)
    except Exception:  # a chart is a nicety: never let it cost the alert
        log.exception("could not draw the chart for %s", alert.rule)
        return None


def _render(alert: Alert, width: float, height: float) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # noqa: PLC0415

    values = list(alert.values)
    xs = list(range(-(len(values) - 1), 1))  # samples before the firing one, which is 0
    firing_red = "#E01E5A"
    figure = Figure(figsize=(width, height), dpi=100)
    axes = figure.add_subplot()
    axes.plot(xs, values, color="#1264A3", linewidth=1.8, marker="o", markersize=3)
    axes.axhline(alert.threshold, color=firing_red, linestyle="--", linewidth=1.2)
    axes.annotate(
        f"threshold {alert.op} {format_number(alert.threshold)}",
        (xs[0], alert.threshold),
        textcoords="offset points",
        xytext=(2, 4),
        fontsize=8,
        color=firing_red,
    )
    axes.plot([xs[-1]], [values[-1]], marker="o", markersize=8, color=firing_red)
    axes.annotate(
        f"fired: {format_number(values[-1])}",
        (xs[-1], values[-1]),
        textcoords="offset points",
        xytext=(-8, 8),
        ha="right",
        fontsize=8,
        color=firing_red,
    )
    who = alert.participant_name or alert.participant_id or alert.meeting_id or ""
    axes.set_title(f"{alert.rule}: {alert.metric} · {who}", fontsize=9)
    axes.set_xlabel("samples before the firing one", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = io.BytesIO()
    with _lock:
        figure.savefig(out, format="png")
    return out.getvalue()


def report_chart_png(report: Report, width: float = 7.0, height: float = 3.0) -> bytes | None:
    """A call report's chart as PNG bytes, or None (no matplotlib, switched off, nothing
    with at least MIN_VALUES minutes to draw)."""
    lines = [s for s in report.chart if len(s.values) >= MIN_VALUES]
    if not lines or not available():
        return None
    try:
        return _render_report(report, lines, width, height)
    except Exception:  # a chart is a nicety: never let it cost the report
        log.exception("could not draw the chart of the report %s", report.title)
        return None


def _render_report(report: Report, lines: list[ReportSeries], width: float, height: float) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width, height), dpi=100)
    axes = figure.add_subplot()
    for series in lines:
        minutes = [(t - report.start).total_seconds() / 60 for t in series.times]
        axes.plot(minutes, list(series.values), linewidth=1.5, label=series.name)
    where = report.meeting_id or report.session_id or ""
    axes.set_title(f"{report.chart_metric or ''} over the call · {where}", fontsize=9)
    axes.set_xlabel(f"minutes since {report.start:%H:%M} UTC", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    out = io.BytesIO()
    with _lock:
        figure.savefig(out, format="png")
    return out.getvalue()
