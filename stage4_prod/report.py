"""A small HTML report of the inference log, readable offline: ``make report``.

    python -m stage4_prod.report [--logs logs/] [--output reports/rapport.html]

Four plots, embedded as PNG in one self-contained file: anomaly rate per model version,
scores against each version's threshold, latency per call, and the drift of each sensor (PSI
of successive windows of logged inputs against the model's reference distribution); a table
per version and one of latency per call. matplotlib is a reporting tool: in
requirements-dev.txt, not in the image.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, FileSystemLoader
from matplotlib.figure import Figure

from common import plots
from common.plots import bucket, calls, latency_figure, latency_table, png, score_figure
from common.registry import RegistryError, read_metadata
from common.schema import SENSOR_NAMES

from . import drift
from .inference_log import read_logs
from .logs_summary import by_version
from .scoring import ANOMALY
from .settings import get_settings

DEFAULT_OUTPUT = Path("reports") / "rapport.html"
TIME = "%Y-%m-%d %H:%M:%S"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)


def anomaly_rate_figure(logs: pd.DataFrame, step: str) -> Figure:
    return plots.anomaly_rate_figure(logs.assign(anomaly=logs["decision"] == ANOMALY), step)


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


def drift_figure(logs: pd.DataFrame, models_dir: Path, step: str) -> Figure | None:
    """The PSI curves of ``drift_series`` with the warning and alert thresholds (None if no window)."""
    series = drift_series(logs, models_dir)
    if series is None:
        return None
    version, table = series
    figure, ax = plt.subplots(figsize=(9, 3.5))
    # A batch job logs thousands of readings at the same instant: when every window closed in one
    # interval, time cannot tell them apart, their order can.
    same_time = plots.one_interval(logs["time"], step)
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
        plots.time_axis(ax, logs["time"], step)
    ax.legend(fontsize=8, **plots.OUTSIDE)
    return figure


def version_rows(logs: pd.DataFrame) -> list[list[str]]:
    table = by_version(logs)
    table["anomaly_rate"] = (100 * table["anomaly_rate"]).map("{:.2f} %".format)
    table["first"], table["last"] = table["first"].dt.strftime(TIME), table["last"].dt.strftime(TIME)
    columns = ["predictions", "anomalies", "anomaly_rate", "first", "last"]
    return table[columns].reset_index().astype(str).values.tolist()


def latency_rows(table: pd.DataFrame) -> list[list[str]]:
    latency = latency_table(table)
    counts = latency[["calls", "readings"]].map("{:.0f}".format)
    return counts.join(latency[["latency_p50", "latency_p95"]].map("{:.2f}".format)).reset_index().values.tolist()


def build(logs: pd.DataFrame, models_dir: Path) -> str:
    """The complete French HTML page (``templates/report.html``, every value escaped)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if logs.empty:
        return TEMPLATES.get_template("report.html").render(count=0, now=now)
    step = bucket(logs["time"])
    table = calls(logs)
    drift_plot = drift_figure(logs, models_dir, step)
    return TEMPLATES.get_template("report.html").render(
        count=len(logs),
        first=f"{logs['time'].min():{TIME}}",
        last=f"{logs['time'].max():{TIME}}",
        now=now,
        sources=", ".join(f"{s} : {n}" for s, n in logs["source"].value_counts().items()),
        versions=version_rows(logs),
        latencies=latency_rows(table),
        images={
            "rate": png(anomaly_rate_figure(logs, step)),
            "scores": png(score_figure(logs, models_dir)),
            "latency": png(latency_figure(table, step)),
            "drift": png(drift_plot) if drift_plot is not None else None,
        },
        min_readings=drift.MIN_READINGS,
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
