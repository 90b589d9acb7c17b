"""The batch job: score a CSV file, or every CSV file of a folder, chunk by chunk.

    python -m stage3_preprod.batch mesures/ --output resultats/
    python -m stage3_preprod.batch gros_fichier.csv --output resultats/ --chunk-rows 20000

For each file ``<nom>.csv``: ``<nom>_scores.csv`` and ``<nom>_rejets.csv`` (line, French
reason, the row as read: no row is dropped silently), then ``resume.csv`` for every file.
Memory stays bounded (one chunk and each equipment's last readings). Every prediction goes
to the inference log. Exit code 0 when the job ran, even if some files were refused (their
line in ``resume.csv`` says why); 2 when it cannot run (no input, no model, output not writable).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from common.data import DEFAULT_CHUNK_ROWS, DataError, write_csv
from common.registry import LoadedModel, RegistryError

from . import inference_log
from .scoring import ANOMALY, load_model, score_chunks
from .settings import get_settings

SUMMARY = "resume.csv"
PROGRESS_SECONDS = 1.0  # at most one progress line per second and per file


class FatalError(Exception):
    """The job cannot run at all; the message (French) says why."""


@dataclass
class FileSummary:  # one line of resume.csv
    fichier: str
    statut: str  # "ok" or "échec"
    lignes: int = 0
    rejetees: int = 0
    anomalies: int = 0
    taux_anomalies: float = 0.0  # among the scored rows
    duree_s: float = 0.0
    modele: str = ""
    message: str = ""


def input_files(source: Path) -> list[Path]:
    """The CSV file given, or the CSV files of the folder given (sorted); FatalError if there is none."""
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if files:
            return files
        raise FatalError(f"aucun fichier .csv dans le dossier {source}")
    raise FatalError(f"entrée introuvable : {source}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def score_one(path: Path, output: Path, loaded: LoadedModel, chunk_rows: int, log_dir: Path, job: str) -> FileSummary:
    """Score one file into ``output``; a file-level problem is reported in the summary, not raised."""
    start = time.perf_counter()
    summary = FileSummary(fichier=path.name, statut="ok", modele=loaded.version)
    shown, first = time.monotonic(), True
    try:
        with (
            open(output / f"{path.stem}_scores.csv", "w", encoding="utf-8", newline="") as scores_file,
            open(output / f"{path.stem}_rejets.csv", "w", encoding="utf-8", newline="") as rejects_file,
        ):
            for scored, rejects, latency_ms in score_chunks(loaded, path, chunk_rows, equipment_id=path.stem):
                write_csv(scored, scores_file, with_equipment=True, header=first)
                rejects.to_csv(rejects_file, sep=";", index=False, header=first, lineterminator="\r\n")
                first = False
                inference_log.record(log_dir, "batch_cli", job, scored, latency_ms)
                summary.lignes += len(scored)
                summary.rejetees += len(rejects)
                summary.anomalies += int((scored["decision"] == ANOMALY).sum())
                if time.monotonic() - shown >= PROGRESS_SECONDS:
                    shown = time.monotonic()
                    progress(f"  {path.name} : {summary.lignes + summary.rejetees} lignes lues…")
    except DataError as exc:
        summary.statut, summary.message = "échec", f"fichier refusé : {exc}"
    summary.taux_anomalies = round(summary.anomalies / summary.lignes, 6) if summary.lignes else 0.0
    summary.duree_s = round(time.perf_counter() - start, 3)
    return summary


def run(source: Path, output: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list[FileSummary]:
    """Score every input file into ``output`` and write resume.csv; FatalError if the job cannot run."""
    files = input_files(source)
    settings = get_settings()
    try:
        loaded = load_model(settings)
    except RegistryError as exc:
        raise FatalError(f"aucun modèle utilisable : {exc}") from None
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / SUMMARY).touch()
    except OSError as exc:
        raise FatalError(f"dossier de sortie {output} inaccessible en écriture : {exc}") from None
    job_id = f"lot-{uuid.uuid4().hex[:12]}"
    progress(f"Lot {job_id} : {len(files)} fichier(s), modèle {loaded.version}, morceaux de {chunk_rows} lignes")
    summaries = []
    for path in files:
        summary = score_one(path, output, loaded, chunk_rows, settings.log_dir, job_id)
        summaries.append(summary)
        progress(
            f"- {path.name} : {summary.statut}, {summary.lignes} mesures notées, {summary.rejetees} rejetées, "
            f"{summary.anomalies} anomalie(s), {summary.duree_s:.1f} s"
            + (f" ({summary.message})" if summary.message else "")
        )
    pd.DataFrame(map(asdict, summaries)).to_csv(output / SUMMARY, sep=";", index=False, lineterminator="\r\n")
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.batch",
        description="Analyse par lots : note un fichier CSV (format SKAB) ou tous les CSV d'un dossier, morceau par morceau.",
    )
    parser.add_argument("entree", help="fichier CSV ou dossier de fichiers CSV")
    parser.add_argument("--output", required=True, help="dossier des résultats (créé au besoin)")
    parser.add_argument(
        "--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help=f"lignes par morceau (défaut : {DEFAULT_CHUNK_ROWS})"
    )
    args = parser.parse_args(argv)
    if args.chunk_rows < 1:
        parser.error("--chunk-rows doit être un entier positif")
    try:
        summaries = run(Path(args.entree), Path(args.output), args.chunk_rows)
    except FatalError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    failed = sum(s.statut != "ok" for s in summaries)
    print(
        f"{len(summaries)} fichier(s) traité(s), {failed} en échec ; "
        f"{sum(s.lignes for s in summaries)} mesures notées, {sum(s.rejetees for s in summaries)} rejetées, "
        f"{sum(s.anomalies for s in summaries)} anomalie(s). Résumé : {Path(args.output) / SUMMARY}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
