"""A small HTML report of the inference log, readable offline: ``make report``.

    python -m stage3_preprod.report [--logs logs/] [--output reports/rapport.html]

Three plots (matplotlib, embedded as base64 PNG: one self-contained file, no network):
anomaly rate over time per model version, score distribution with each version's alarm
threshold, latency per call over time (single readings apart from batches); a table per
version and one of latency per call. Time axes span the log, from a batch scored in one
second to months of service. matplotlib is a reporting tool: it is in
requirements-dev.txt, not in the service's image.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader  # noqa: E402

from common.plots import STEPS, bucket, centres, png, time_axis  # noqa: E402
from common.registry import RegistryError, read_metadata  # noqa: E402

from .inference_log import read_logs  # noqa: E402
from .logs_summary import by_version  # noqa: E402
from .scoring import ANOMALY  # noqa: E402
from .settings import get_settings  # noqa: E402

DEFAULT_OUTPUT = Path("reports") / "rapport.html"
TIME = "%Y-%m-%d %H:%M:%S"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)

# Every line of the log carries the latency of the call that wrote it (a request, a stream
# message, a chunk of a batch job). These sources score one reading per call; the others
# (api_batch, api_csv, form_file, batch_cli) score a batch, whose latency is that of the batch.
SINGLE_SOURCES = ("api", "form", "stream")
SINGLE, BATCH = "mesure seule", "lot"
# Legends beside the plot: inside, they hide the points of whatever corner they take.
OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}


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


def version_rows(logs: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(v),
            r["predictions"],
            r["anomalies"],
            f"{100 * r['anomaly_rate']:.2f} %",
            f"{r['first']:{TIME}}",
            f"{r['last']:{TIME}}",
        ]
        for v, r in by_version(logs).iterrows()
    ]


def latency_rows(table: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(version),
            kind,
            f"{r['calls']:.0f}",
            f"{r['readings']:.0f}",
            f"{r['latency_p50']:.2f}",
            f"{r['latency_p95']:.2f}",
        ]
        for (version, kind), r in latency_table(table).iterrows()
    ]


def build(logs: pd.DataFrame, models_dir: Path) -> str:
    """The complete French HTML page (``templates/report.html``, every value escaped)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if logs.empty:
        return TEMPLATES.get_template("report.html").render(count=0, now=now)
    step = bucket(logs["time"])
    table = calls(logs)
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
        },
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
