"""Guided tour of stage 1 (run by ``make demo``): what a colleague gets, in French."""

from __future__ import annotations

import tempfile
from pathlib import Path

from common.data import write_csv
from common.schema import EXAMPLE_READING, SENSORS
from common.simulator import SCENARIO_LABELS, simulate

from .scoring import load_model, score_file, score_reading, summary
from .settings import get_settings

ABNORMAL_READING = {**EXAMPLE_READING, "accelerometer1_rms": 0.30, "volume_flow_rate_rms": 8.0, "pressure": 0.9}


def _reading(reading: dict) -> str:
    return ", ".join(f"{s.name}={reading[s.name]:g} {s.unit}" for s in SENSORS)


def main() -> int:
    settings = get_settings()
    loaded = load_model(settings)
    print("=== Étape 1 : prototype local — un collègue obtient une prédiction sans coder ===")
    print(f"Modèle {loaded.version} chargé depuis {settings.models_dir} (empreinte sha256 vérifiée).")
    for title, reading in (("Mesure normale", EXAMPLE_READING), ("Mesure anormale", ABNORMAL_READING)):
        result = score_reading(loaded, reading)
        print(f"\n{title} : {_reading(reading)}")
        print(f"  -> {result['decision']} (score {result['score']:.3f}, seuil {result['threshold']:.3f})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pompe_vanne.csv"
        write_csv(simulate("valve_closure", seed=2024, hours=12), path)
        print(f"\nFichier CSV simulé ({SCENARIO_LABELS['valve_closure']}) analysé comme le ferait")
        print(f"  python -m stage1_local.predict {path.name}")
        scored = score_file(loaded, path)
        print("  " + summary(scored, loaded).replace("\n", "\n  "))
        caught = scored.loc[scored["anomaly"] == 1, "decision"].eq("Anomalie").mean()
        print(f"  Part des mesures de la panne signalées : {100 * caught:.0f} %.")
    print(f"\nPour le formulaire web : make stage1-up puis http://{settings.host}:{settings.port}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
