"""The plots of an inference-log report: anomaly rate, scores and threshold, latency per call, in time.

Time axes take an interval that suits the span and write dates in French order; figures are
PNG for a self-contained HTML file. Shared by the reports of stages 3 and 4.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common.registry import RegistryError, read_metadata  # noqa: E402

# Time steps of the plots, smallest first, with their French names. The first one that cuts the
# log's span into at most MAX_BUCKETS intervals is used: a minute of logs is read per second, a
# day per hour, a month per day, so that a curve has enough points and never too many.
STEPS = {
    "1s": "1 s",
    "10s": "10 s",
    "1min": "1 min",
    "10min": "10 min",
    "1h": "1 h",
    "6h": "6 h",
    "1D": "1 jour",
    "7D": "7 jours",
}
MAX_BUCKETS = 100

# Date labels in French order, never below the second: ticks of 6 levels (years, months, days,
# hours, minutes, seconds), the label of a tick that opens the level above, and the offset that
# matplotlib writes once at the end of the axis (the date of a day of hours, say).
DATE_FORMATS = ["%Y", "%m/%Y", "%d/%m", "%H:%M", "%H:%M", "%H:%M:%S"]
DATE_ZERO_FORMATS = ["", "%Y", "%d/%m", "%d/%m", "%H:%M", "%H:%M:%S"]
DATE_OFFSET_FORMATS = ["", "%Y", "%m/%Y", "%d/%m/%Y", "%d/%m/%Y", "%d/%m/%Y"]


def bucket(times: pd.Series) -> str:
    """The time step (a key of STEPS) that cuts the span of ``times`` into at most MAX_BUCKETS intervals."""
    span = times.max() - times.min()
    for step in STEPS:
        if span < MAX_BUCKETS * pd.Timedelta(step):
            return step
    return list(STEPS)[-1]


def one_interval(times: pd.Series, step: str) -> bool:
    """True if every time falls in the same interval of ``step`` (a batch scored in under a second)."""
    return times.dt.floor(step).nunique() == 1


def time_axis(ax: plt.Axes, times: pd.Series, step: str) -> None:
    """Fit the x axis to the span of ``times`` with a small margin, and label it with readable dates.

    Without limits, matplotlib widens an axis of a single date to years; without a formatter fitted
    to the span, a minute of logs is labelled in microseconds. When every time falls in one
    interval, the interval is shaded and named: a single point says nothing of a trend.
    """
    start, end = times.min(), times.max()
    # At least 2 s on each side: an axis shorter than 3 whole seconds is ticked in fractions of one.
    margin = max((end - start) * 0.03, pd.Timedelta(step), pd.Timedelta(seconds=2))
    ax.set_xlim(start - margin, end + margin)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(
            locator, formats=DATE_FORMATS, zero_formats=DATE_ZERO_FORMATS, offset_formats=DATE_OFFSET_FORMATS
        )
    )
    if one_interval(times, step):
        first = start.floor(step)
        ax.axvspan(first, first + pd.Timedelta(step), color="#e4e9ef", zorder=0)
        ax.set_xlabel(f"temps (UTC) ; un seul intervalle : {first:%Y-%m-%d %H:%M:%S} (pas : {STEPS[step]})")
    else:
        ax.set_xlabel("temps (UTC)")


def centres(series: pd.Series, step: str) -> pd.DatetimeIndex:
    """The middle of each interval of a resampled series: a value holds for its whole interval,
    and its point stays inside the span of the data."""
    return series.index + pd.Timedelta(step) / 2


def png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# Every line of the log carries the latency of the call that wrote it (a request, a stream
# message, a chunk of a batch job). These sources score one reading per call; the others
# (api_batch, api_csv, form_file, batch_cli) score a batch, whose latency is that of the batch.
SINGLE_SOURCES = ("api", "form", "stream")
SINGLE, BATCH = "mesure seule", "lot"
# Legends beside the plot: inside, they hide the points of whatever corner they take.
OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}


def anomaly_rate_figure(logs: pd.DataFrame, step: str) -> plt.Figure:
    """Anomaly rate per interval and model version; ``logs`` has a boolean ``anomaly`` column."""
    figure, ax = plt.subplots(figsize=(9, 3.5))
    for version, rows in logs.groupby("model_version"):
        rate = rows.set_index("time")["anomaly"].resample(step).mean() * 100
        ax.plot(centres(rate, step), rate.to_numpy(), marker="o", markersize=4, label=f"modèle {version}")
    ax.set(title=f"Taux d'anomalies (pas : {STEPS[step]})", ylabel="% des prédictions")
    ax.set_ylim(bottom=0)
    time_axis(ax, logs["time"], step)
    ax.legend(**OUTSIDE)
    return figure


def score_figure(logs: pd.DataFrame, models_dir: Path) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    for version, rows in logs.groupby("model_version"):
        ax.hist(rows["score"], bins=60, alpha=0.5, label=f"modèle {version}")
        try:
            threshold = read_metadata(str(version), models_dir)["threshold"]
            ax.axvline(threshold, linestyle="--", color="black")
            ax.annotate(
                f"seuil {version}",
                (threshold, 0.97),
                xycoords=("data", "axes fraction"),  # inside the plot, whatever the height of the bars
                rotation=90,
                ha="right",
                va="top",
            )
        except RegistryError:
            pass  # a version no longer in this registry: its scores are still shown
    ax.set(title="Distribution des scores et seuil d'alarme", xlabel="score", ylabel="prédictions")
    ax.legend(**OUTSIDE)
    return figure


def calls(logs: pd.DataFrame) -> pd.DataFrame:
    """One row per logged call: ``time``, ``model_version``, ``source``, ``kind`` (SINGLE or BATCH),
    ``readings`` (lines it wrote) and ``latency_ms``.

    The lines of a call share its time, request id, source and latency: a quantile over lines
    would count a batch of 10,000 readings 10,000 times and a single reading once.
    """
    keys = ["time", "request_id", "source", "model_version", "latency_ms"]
    table = logs.groupby(keys, sort=False, dropna=False).size().rename("readings").reset_index()
    kind = table["source"].isin(SINGLE_SOURCES).map({True: SINGLE, False: BATCH})
    return table.assign(kind=kind).sort_values("time", kind="stable", ignore_index=True)


def latency_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per model version and kind of call: calls, readings, latency p50 and p95 per call (ms)."""
    grouped = table.groupby(["model_version", "kind"])
    return pd.DataFrame(
        {
            "calls": grouped.size(),
            "readings": grouped["readings"].sum(),
            "latency_p50": grouped["latency_ms"].median(),
            "latency_p95": grouped["latency_ms"].quantile(0.95),
        }
    )


def latency_figure(table: pd.DataFrame, step: str) -> plt.Figure:
    """Latency per call, p50 and p95 per interval: single readings above, batches below.

    Two panels sharing the time axis, because a batch takes a thousand times longer than a reading.
    """
    figure, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for ax, kind, title in (
        (axes[0], SINGLE, "Latence par mesure seule (API, formulaire, flux)"),
        (axes[1], BATCH, "Latence par lot (liste, fichier CSV, paquet d'un traitement par lots)"),
    ):
        rows = table[table["kind"] == kind]
        ax.set(title=f"{title}, pas : {STEPS[step]}", ylabel="ms par appel")
        if rows.empty:
            ax.text(0.5, 0.5, "aucun appel de ce type", transform=ax.transAxes, ha="center", va="center")
            ax.set_yticks([])
            continue
        latency = rows.set_index("time")["latency_ms"].resample(step)
        # Two marker shapes: with one call in an interval, p50 and p95 are the same point.
        for q, label, marker in ((0.5, "p50", "o"), (0.95, "p95", "^")):
            series = latency.quantile(q)
            ax.plot(centres(series, step), series.to_numpy(), marker=marker, markersize=4, label=label)
        ax.set_ylim(bottom=0)
        ax.legend(**OUTSIDE)
    time_axis(axes[1], table["time"], step)  # the axes share x: its limits and labels hold for both
    return figure
