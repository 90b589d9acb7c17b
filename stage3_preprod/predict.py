"""The colleague's command line: score a CSV file, or one reading typed as options.

    python -m stage3_preprod.predict mesures.csv [--output res.csv]    # by default: mesures_scores.csv
    python -m stage3_preprod.predict --accelerometer1-rms 0.027 --accelerometer2-rms 0.04 \\
        --current 1.2 --pressure 0.055 --temperature 71 --thermocouple 25.4 \\
        --voltage 230 --volume-flow-rate-rms 32

Exit code 0 on success, 2 when the input or the model cannot be used (the message,
in French, says which field or line to fix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError as InvalidReading

from common.data import DataError, write_csv
from common.messages import first_error
from common.readings import from_text
from common.registry import RegistryError
from common.schema import SENSORS, ValidationError

from .scoring import load_model, score_file, score_reading, summary
from .settings import get_settings


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.predict",
        description="Détecte les anomalies d'un fichier de mesures (CSV au format SKAB) ou d'une mesure.",
    )
    parser.add_argument("fichier", nargs="?", help="fichier CSV à analyser (séparateur « ; »)")
    parser.add_argument("--output", help="fichier résultat (défaut : <fichier>_scores.csv)")
    parser.add_argument("--equipement", default="pompe-01", help="identifiant d'équipement si le fichier n'en a pas")
    group = parser.add_argument_group("une seule mesure (les huit valeurs)")
    for s in SENSORS:
        group.add_argument(_option(s.name), dest=s.name, metavar=s.unit, help=f"{s.label} ({s.unit})")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> str:
    """Do what the arguments ask and return the French report to print."""
    loaded = load_model(get_settings())
    if args.fichier:
        source = Path(args.fichier)
        if not source.is_file():
            raise DataError(f"fichier introuvable : {source}")
        scored = score_file(loaded, source, equipment_id=args.equipement)
        output = Path(args.output) if args.output else source.with_name(f"{source.stem}_scores.csv")
        write_csv(scored, output, with_equipment=True)
        return f"{summary(scored, loaded)}\nRésultat détaillé écrit dans {output}"
    if all(getattr(args, s.name) is None for s in SENSORS):
        raise ValidationError("fichier", "donnez un fichier CSV ou les huit valeurs d'une mesure (voir --help)")
    missing = [s.name for s in SENSORS if getattr(args, s.name) is None]
    if missing:
        raise ValidationError(missing[0], f"valeur manquante (option {_option(missing[0])})")
    try:
        reading = from_text({s.name: getattr(args, s.name) for s in SENSORS})
    except InvalidReading as exc:
        raise first_error(exc.errors()) from None
    result = score_reading(loaded, reading)
    return (
        f"Décision : {result['decision']} (score {result['score']:.3f}, seuil {result['threshold']:.3f}, "
        f"modèle {result['model_version']})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except (DataError, ValidationError, RegistryError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
