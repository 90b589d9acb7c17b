"""What the inference log says, per model version: volume, anomaly rate, latency.

    python -m stage3_preprod.logs_summary [--logs logs/]      # make logs-summary

Prints, in French, one line per model version, then the volume per source.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .inference_log import read_logs
from .scoring import ANOMALY
from .settings import get_settings


def by_version(logs: pd.DataFrame) -> pd.DataFrame:
    """Per model version: predictions, anomalies, anomaly rate, latency p50/p95 (ms), first and last line."""
    grouped = logs.assign(anomaly=logs["decision"] == ANOMALY).groupby("model_version")
    return pd.DataFrame(
        {
            "predictions": grouped.size(),
            "anomalies": grouped["anomaly"].sum(),
            "anomaly_rate": grouped["anomaly"].mean(),
            "latency_p50": grouped["latency_ms"].median(),
            "latency_p95": grouped["latency_ms"].quantile(0.95),
            "first": grouped["time"].min(),
            "last": grouped["time"].max(),
        }
    )


def summary_text(logs: pd.DataFrame) -> str:
    if logs.empty:
        return "Journal des inférences vide : aucune prédiction enregistrée."
    table = by_version(logs)
    lines = [
        f"{len(logs)} prédictions du {logs['time'].min():%Y-%m-%d %H:%M} au {logs['time'].max():%Y-%m-%d %H:%M} (UTC).",
        f"{'modèle':<10} {'prédictions':>12} {'anomalies':>10} {'taux':>8} {'latence p50':>12} {'latence p95':>12}",
    ]
    for version, row in table.iterrows():
        lines.append(
            f"{version:<10} {row['predictions']:>12} {row['anomalies']:>10} {100 * row['anomaly_rate']:>7.2f} % "
            f"{row['latency_p50']:>9.2f} ms {row['latency_p95']:>9.2f} ms"
        )
    sources = logs["source"].value_counts()
    lines.append("Par origine : " + ", ".join(f"{source} {n}" for source, n in sources.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.logs_summary", description="Résumé du journal des inférences."
    )
    parser.add_argument("--logs", default=None, help="dossier du journal (défaut : $LOG_DIR ou logs/)")
    args = parser.parse_args(argv)
    folder = Path(args.logs) if args.logs else get_settings().log_dir
    try:
        print(summary_text(read_logs(folder)))
    except (OSError, ValueError, KeyError) as exc:
        print(f"Erreur : journal illisible dans {folder} : {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
