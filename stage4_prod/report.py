"""A small HTML report of the inference log, readable offline: ``make report``.

    python -m stage4_prod.report [--logs logs/] [--output reports/rapport.html]

Four plots (matplotlib, embedded as base64 PNG: one self-contained file, no network):
anomaly rate over time per model version, score distribution with each version's alarm
threshold, latency over time, and the drift of each sensor (PSI of successive windows of
logged inputs against the model's reference distribution); and the per-version table of
``logs_summary``. matplotlib
is a reporting tool: it is in requirements-dev.txt, not in the service's image.
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
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common.registry import RegistryError, read_metadata  # noqa: E402
from common.schema import SENSOR_NAMES  # noqa: E402
from stage4_prod import drift  # noqa: E402
from stage4_prod.inference_log import read_logs  # noqa: E402
from stage4_prod.logs_summary import by_version  # noqa: E402
from stage4_prod.scoring import ANOMALY  # noqa: E402
from stage4_prod.settings import get_settings  # noqa: E402

DEFAULT_OUTPUT = Path("reports") / "rapport.html"
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1d2733}"
    "table{border-collapse:collapse}th,td{border-bottom:1px solid #dde3ea;padding:.3rem .6rem;text-align:right}"
    "img{max-width:100%}"
)


def bucket(logs: pd.DataFrame) -> str:
    """A time step that gives a readable curve for the period the log covers."""
    span = logs["time"].max() - logs["time"].min()
    return "1min" if span <= pd.Timedelta(hours=3) else "1h" if span <= pd.Timedelta(days=7) else "1D"


def png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def anomaly_rate_plot(logs: pd.DataFrame, step: str) -> str:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    for version, rows in logs.groupby("model_version"):
        rate = (rows.set_index("time")["decision"] == ANOMALY).resample(step).mean() * 100
        ax.plot(rate.index, rate.to_numpy(), marker=".", label=f"modèle {version}")
    ax.set(title=f"Taux d'anomalies (pas : {step})", ylabel="% des prédictions")
    ax.legend()
    figure.autofmt_xdate()
    return png(figure)


def score_plot(logs: pd.DataFrame, models_dir: Path) -> str:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    for version, rows in logs.groupby("model_version"):
        ax.hist(rows["score"], bins=60, alpha=0.5, label=f"modèle {version}")
        try:
            threshold = read_metadata(str(version), models_dir)["threshold"]
            ax.axvline(threshold, linestyle="--", color="black")
            ax.annotate(f"seuil {version}", (threshold, ax.get_ylim()[1] * 0.9), rotation=90, ha="right")
        except RegistryError:
            pass  # a version no longer in this registry: its scores are still shown
    ax.set(title="Distribution des scores et seuil d'alarme", xlabel="score", ylabel="prédictions")
    ax.legend()
    return png(figure)


def latency_plot(logs: pd.DataFrame, step: str) -> str:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    latency = logs.set_index("time")["latency_ms"].resample(step)
    for q, label in ((0.5, "p50"), (0.95, "p95")):
        series = latency.quantile(q)
        ax.plot(series.index, series.to_numpy(), marker=".", label=label)
    ax.set(title=f"Latence des appels (pas : {step})", ylabel="ms")
    ax.legend()
    figure.autofmt_xdate()
    return png(figure)


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


def drift_plot(logs: pd.DataFrame, models_dir: Path) -> str | None:
    """The PSI curves of ``drift_series`` with the warning and alert thresholds."""
    series = drift_series(logs, models_dir)
    if series is None:
        return None
    version, table = series
    figure, ax = plt.subplots(figsize=(9, 3.5))
    for name in table.columns:
        ax.plot(table.index, table[name].to_numpy(), marker=".", label=name)
    ax.axhline(drift.PSI_WARN, linestyle="--", color="orange")
    ax.axhline(drift.PSI_ALERT, linestyle="--", color="red")
    ax.set(title=f"Dérive des entrées (PSI par fenêtre de {drift.WINDOW} mesures, modèle {version})", ylabel="PSI")
    ax.legend(fontsize=7, ncol=2)
    figure.autofmt_xdate()
    return png(figure)


def build(logs: pd.DataFrame, models_dir: Path) -> str:
    """The complete French HTML page."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Rapport des inférences</title><style>{STYLE}</style></head><body>'
    if logs.empty:
        return f"{head}<h1>Rapport des inférences</h1><p>Journal vide : aucune prédiction enregistrée ({now}).</p></body></html>"
    step = bucket(logs)
    table = by_version(logs)
    rows = "".join(
        f"<tr><td>{escape(str(v))}</td><td>{r['predictions']}</td><td>{r['anomalies']}</td>"
        f"<td>{100 * r['anomaly_rate']:.2f} %</td><td>{r['latency_p50']:.2f}</td><td>{r['latency_p95']:.2f}</td>"
        f"<td>{r['first']:%Y-%m-%d %H:%M}</td><td>{r['last']:%Y-%m-%d %H:%M}</td></tr>"
        for v, r in table.iterrows()
    )
    sources = ", ".join(f"{escape(str(s))} : {n}" for s, n in logs["source"].value_counts().items())
    drift_png = drift_plot(logs, models_dir)
    plots = "".join(
        f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
        for alt, data in (
            ("taux d'anomalies", anomaly_rate_plot(logs, step)),
            ("distribution des scores", score_plot(logs, models_dir)),
            ("latence", latency_plot(logs, step)),
            ("dérive des entrées", drift_png),
        )
        if data
    )
    if drift_png is None:
        plots += (
            f"<p>Dérive : journal trop court (moins de {drift.MIN_READINGS} mesures) ou modèle absent du registre.</p>"
        )
    return (
        f"{head}<h1>Rapport des inférences</h1>"
        f"<p>{len(logs)} prédictions du {logs['time'].min():%Y-%m-%d %H:%M} au {logs['time'].max():%Y-%m-%d %H:%M} (UTC), "
        f"rapport construit le {now}. Par origine : {sources}.</p>"
        "<table><tr><th>modèle</th><th>prédictions</th><th>anomalies</th><th>taux</th><th>latence p50 (ms)</th>"
        f"<th>latence p95 (ms)</th><th>première</th><th>dernière</th></tr>{rows}</table>{plots}</body></html>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.report", description="Rapport HTML des inférences.")
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
