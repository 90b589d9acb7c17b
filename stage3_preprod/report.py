"""A small HTML report of the inference log, readable offline: ``make report``.

    python -m stage3_preprod.report [--logs logs/] [--output reports/rapport.html]

Three plots, embedded as PNG in one self-contained file: anomaly rate per model version,
scores against each version's threshold, latency per call; a table per version and one of
latency per call. matplotlib is a reporting tool: in requirements-dev.txt, not in the image.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader
from matplotlib.figure import Figure

from common import plots
from common.plots import bucket, calls, latency_figure, latency_table, png, score_figure

from .inference_log import read_logs
from .logs_summary import by_version
from .scoring import ANOMALY
from .settings import get_settings

DEFAULT_OUTPUT = Path("reports") / "rapport.html"
TIME = "%Y-%m-%d %H:%M:%S"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)


def anomaly_rate_figure(logs: pd.DataFrame, step: str) -> Figure:
    return plots.anomaly_rate_figure(logs.assign(anomaly=logs["decision"] == ANOMALY), step)


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
