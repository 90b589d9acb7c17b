"""A small HTML report of the inference log, readable offline: ``make report``.

    python -m stage4_prod.report [--logs logs/] [--output reports/rapport.html]

Four plots (matplotlib, embedded as base64 PNG: one self-contained file, no network):
anomaly rate over time per model version, score distribution with each version's alarm
threshold, latency per call over time (single readings apart from batches), and the drift
of each sensor (PSI of successive windows of logged inputs against the model's reference
distribution); a table per version and one of latency per call. Time axes span the log,
from a batch scored in one second to months of service. matplotlib is a reporting tool:
it is in requirements-dev.txt, not in the service's image.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common.registry import RegistryError, read_metadata  # noqa: E402
from common.schema import SENSOR_NAMES  # noqa: E402

from . import drift  # noqa: E402
from .inference_log import read_logs  # noqa: E402
from .logs_summary import by_version  # noqa: E402
from .scoring import ANOMALY  # noqa: E402
from .settings import get_settings  # noqa: E402

DEFAULT_OUTPUT = Path("reports") / "rapport.html"
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1d2733}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "th,td{border-bottom:1px solid #dde3ea;padding:.3rem .6rem;text-align:right}"
    "img{max-width:100%}"
)

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

# Every line of the log carries the latency of the call that wrote it (a request, a stream
# message, a chunk of a batch job). These sources score one reading per call; the others
# (api_batch, api_csv, form_file, batch_cli) score a batch, whose latency is that of the batch.
SINGLE_SOURCES = ("api", "form", "stream")
SINGLE, BATCH = "mesure seule", "lot"
# Legends beside the plot: inside, they hide the points of whatever corner they take.
OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}


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


def anomaly_rate_figure(logs: pd.DataFrame, step: str) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    for version, rows in logs.groupby("model_version"):
        rate = (rows.set_index("time")["decision"] == ANOMALY).resample(step).mean() * 100
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


def drift_series(logs: pd.DataFrame, models_dir: Path) -> tuple[str, pd.DataFrame] | None:
    """PSI per sensor of successive windows of logged inputs, against the model's reference.

    One row per window of ``drift.WINDOW`` readings of the most used model version,
    indexed by the time of the window's last reading (the last window counts if it holds
    at least ``drift.MIN_READINGS``). None when the log is too short or the version's
    metadata is not in this registry.
    """
    version = str(logs["model_version"].value_counts().idxmax())
    try:
        reference = read_metadata(version, models_dir)["reference"]["inputs"]
    except (RegistryError, KeyError):
        return None
    rows = logs[logs["model_version"].astype(str) == version].sort_values("time", kind="stable")
    starts = [i for i in range(0, len(rows), drift.WINDOW) if len(rows) - i >= drift.MIN_READINGS]
    if not starts:
        return None
    ends = [rows["time"].iloc[min(i + drift.WINDOW, len(rows)) - 1] for i in starts]
    values = {name: rows[name].to_numpy(dtype="float64") for name in SENSOR_NAMES}
    table = {name: [drift.psi(v[i : i + drift.WINDOW], reference[name]) for i in starts] for name, v in values.items()}
    return version, pd.DataFrame(table, index=pd.Index(ends, name="time"))


def drift_figure(logs: pd.DataFrame, models_dir: Path, step: str) -> plt.Figure | None:
    """The PSI curves of ``drift_series`` with the warning and alert thresholds (None if no window)."""
    series = drift_series(logs, models_dir)
    if series is None:
        return None
    version, table = series
    figure, ax = plt.subplots(figsize=(9, 3.5))
    # A batch job logs thousands of readings at the same instant: when every window closed in one
    # interval, time cannot tell them apart, their order can.
    same_time = one_interval(logs["time"], step)
    x = range(1, len(table) + 1) if same_time else table.index
    for name in table.columns:
        ax.plot(x, table[name].to_numpy(), marker="o", markersize=3, label=name)
    ax.axhline(drift.PSI_WARN, linestyle="--", color="orange")
    ax.axhline(drift.PSI_ALERT, linestyle="--", color="red")
    ax.set(title=f"Dérive des entrées (PSI par fenêtre de {drift.WINDOW} mesures, modèle {version})", ylabel="PSI")
    if same_time:
        ax.set_xticks(list(x))
        when = logs["time"].min().floor(step)
        ax.set_xlabel(f"fenêtre n° (toutes notées dans le même intervalle : {when:%Y-%m-%d %H:%M:%S} UTC)")
    else:
        time_axis(ax, logs["time"], step)
    ax.legend(fontsize=8, **OUTSIDE)
    return figure


def version_rows(logs: pd.DataFrame) -> str:
    return "".join(
        f"<tr><td>{escape(str(v))}</td><td>{r['predictions']}</td><td>{r['anomalies']}</td>"
        f"<td>{100 * r['anomaly_rate']:.2f} %</td>"
        f"<td>{r['first']:%Y-%m-%d %H:%M:%S}</td><td>{r['last']:%Y-%m-%d %H:%M:%S}</td></tr>"
        for v, r in by_version(logs).iterrows()
    )


def latency_rows(table: pd.DataFrame) -> str:
    return "".join(
        f"<tr><td>{escape(str(version))}</td><td>{kind}</td><td>{r['calls']:.0f}</td><td>{r['readings']:.0f}</td>"
        f"<td>{r['latency_p50']:.2f}</td><td>{r['latency_p95']:.2f}</td></tr>"
        for (version, kind), r in latency_table(table).iterrows()
    )


def image(alt: str, figure: plt.Figure) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{png(figure)}">'


def build(logs: pd.DataFrame, models_dir: Path) -> str:
    """The complete French HTML page."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Rapport des inférences</title><style>{STYLE}</style></head><body>'
    if logs.empty:
        return f"{head}<h1>Rapport des inférences</h1><p>Journal vide : aucune prédiction enregistrée ({now}).</p></body></html>"
    step = bucket(logs["time"])
    table = calls(logs)
    sources = ", ".join(f"{escape(str(s))} : {n}" for s, n in logs["source"].value_counts().items())
    drift_fig = drift_figure(logs, models_dir, step)
    drift_part = (
        image("dérive des entrées", drift_fig)
        if drift_fig is not None
        else f"<p>Dérive : journal trop court (moins de {drift.MIN_READINGS} mesures) ou modèle absent du registre.</p>"
    )
    return (
        f"{head}<h1>Rapport des inférences</h1>"
        f"<p>{len(logs)} prédictions du {logs['time'].min():%Y-%m-%d %H:%M:%S} au {logs['time'].max():%Y-%m-%d %H:%M:%S} (UTC), "
        f"rapport construit le {now}. Par origine : {sources}.</p>"
        "<table><tr><th>modèle</th><th>prédictions</th><th>anomalies</th><th>taux</th>"
        f"<th>première</th><th>dernière</th></tr>{version_rows(logs)}</table>"
        + image("taux d'anomalies", anomaly_rate_figure(logs, step))
        + image("distribution des scores", score_figure(logs, models_dir))
        + "<h2>Latence</h2><p>Un appel est une requête, un message du flux ou un paquet d'un traitement par lots : "
        "sa latence compte une fois, quel que soit son nombre de mesures.</p>"
        "<table><tr><th>modèle</th><th>appel</th><th>appels</th><th>mesures</th><th>p50 (ms)</th><th>p95 (ms)</th></tr>"
        f"{latency_rows(table)}</table>"
        + image("latence", latency_figure(table, step))
        + "<h2>Dérive</h2>"
        + drift_part
        + "</body></html>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.report", description="Rapport HTML des inférences.")
    parser.add_argument("--logs", default=None, help="dossier du journal (défaut : $LOG_DIR ou logs/)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help=f"fichier HTML (défaut : {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    settings = get_settings()
    folder = Path(args.logs) if args.logs else settings.log_dir
    try:
        html = build(read_logs(folder), settings.models_dir)
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(html, encoding="utf-8")
    except (OSError, ValueError, KeyError) as exc:
        print(f"Erreur : rapport impossible ({folder}) : {exc}", file=sys.stderr)
        return 2
    print(f"Rapport écrit dans {output} ({len(html) // 1024} Ko, lisible hors ligne)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
