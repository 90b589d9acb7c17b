"""Model registry on disk: ``models/<version>/model.joblib`` + ``metadata.json``.

A version is a semantic number typed by a person (``1.2.0``) and is never
overwritten. Loading recomputes the artifact's sha256 and refuses a mismatch: a
joblib file is a pickle, and a pickle that nobody can vouch for must not be loaded.
The artifact holds the model with its forest already flattened into numpy arrays (see
``common.model``): loading it builds no tree and imports no scikit-learn, a few ms.
It also refuses metadata that does not describe the artifact (another version's
folder copied in, an edited threshold): the sha256 covers the artifact only.

Command line (French output)::

    python -m common.registry list [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from common.model import AnomalyModel
from common.schema import SENSOR_NAMES

ARTIFACT = "model.joblib"
METADATA = "metadata.json"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class RegistryError(Exception):
    """A registry operation was refused; the message (French) says why."""


@dataclass(frozen=True)
class LoadedModel:
    model: AnomalyModel
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        return self.metadata["version"]


def models_dir(path: str | os.PathLike | None = None) -> Path:
    """The registry folder: ``path``, else ``$MODELS_DIR``, else ``models/`` at the repository root."""
    return Path(path or os.environ.get("MODELS_DIR") or DEFAULT_MODELS_DIR)


def parse_version(version: str) -> tuple[int, int, int]:
    """``"1.10.0"`` -> ``(1, 10, 0)``; RegistryError if it is not ``MAJEUR.MINEUR.CORRECTIF``."""
    match = VERSION_PATTERN.match(str(version))
    if not match:
        raise RegistryError(f"version « {version} » invalide : attendu MAJEUR.MINEUR.CORRECTIF, par exemple 1.0.0")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a sensor frame's timestamps, equipment and values: same data, same fingerprint."""
    hashed = pd.util.hash_pandas_object(frame[["timestamp", "equipment_id", *SENSOR_NAMES]], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def git_commit() -> str:
    """The commit the code runs from: ``$GIT_COMMIT`` (set in images), else git, else ``inconnu``."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "inconnu"


def list_versions(path: str | os.PathLike | None = None) -> list[str]:
    """Versions in the registry, oldest first (semantic order, not text order)."""
    root = models_dir(path)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if VERSION_PATTERN.match(p.name) and (p / METADATA).is_file()]
    return sorted(found, key=parse_version)


def latest_version(path: str | os.PathLike | None = None) -> str:
    versions = list_versions(path)
    if not versions:
        raise RegistryError(f"aucun modèle dans {models_dir(path)} : entraînez-en un (make model)")
    return versions[-1]


def described(model: AnomalyModel) -> dict[str, Any]:
    """What the metadata repeats of a fitted model, and ``load`` checks against the artifact."""
    return {
        "features": model.feature_names_,
        "window": model.window,
        "params": model.get_params(),
        "threshold": model.threshold_,
        "reference": model.reference_,
    }


def save(
    model: AnomalyModel,
    version: str,
    training_data: pd.DataFrame,
    metrics: dict[str, Any] | None = None,
    path: str | os.PathLike | None = None,
) -> Path:
    """Store a fitted model as a new version and return its folder.

    The version folder appears whole or not at all (written aside, then renamed).
    Raises RegistryError if the version is malformed or already exists.
    """
    parse_version(version)
    root = models_dir(path)
    target = root / version
    if target.exists():
        raise RegistryError(
            f"la version {version} existe déjà : une version n'est jamais écrasée, choisissez-en une autre"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=root))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a service mounting the registry read-only
    try:
        import sklearn  # its version only; serving never imports it (see common.model)

        joblib.dump(model, staging / ARTIFACT)
        metadata = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "training_data": {"fingerprint": fingerprint(training_data), "rows": int(len(training_data))},
            **described(model),
            "sha256": sha256_file(staging / ARTIFACT),
            "libraries": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "pandas": pd.__version__,
                "joblib": joblib.__version__,
            },
            "metrics": metrics or {},
        }
        (staging / METADATA).write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")
        try:
            staging.rename(target)  # atomic; fails if another process created the version meanwhile
        except OSError:
            raise RegistryError(f"la version {version} existe déjà : une version n'est jamais écrasée") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_metadata(version: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    parse_version(version)
    meta_path = models_dir(path) / version / METADATA
    if not meta_path.is_file():
        known = ", ".join(list_versions(path)) or "aucune"
        raise RegistryError(f"version {version} introuvable (versions disponibles : {known})")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"métadonnées de la version {version} illisibles : {exc}") from None


def load(version: str | None = None, path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a version (the latest if None) after checking its artifact's sha256.

    Raises RegistryError if the version is unknown, its metadata unreadable or not its
    own (another version number, or fields that disagree with the artifact), or its
    artifact missing or different from the one registered.
    """
    version = version or latest_version(path)
    metadata = read_metadata(version, path)
    if metadata.get("version") != version:  # another version's folder copied in, or its metadata edited
        raise RegistryError(
            f"le dossier de la version {version} se déclare version {metadata.get('version')} : "
            "métadonnées modifiées ou copiées d'une autre version, chargement refusé"
        )
    artifact = models_dir(path) / version / ARTIFACT
    if not artifact.is_file():
        raise RegistryError(f"artefact {artifact} absent : la version {version} est incomplète")
    data = artifact.read_bytes()  # read once: what is checked is what is unpickled
    actual = hashlib.sha256(data).hexdigest()
    if actual != metadata.get("sha256"):
        raise RegistryError(
            f"empreinte sha256 de {artifact} différente de celle enregistrée "
            f"({actual[:12]}… au lieu de {str(metadata.get('sha256'))[:12]}…) : "
            "artefact modifié ou corrompu, chargement refusé"
        )
    model = joblib.load(io.BytesIO(data))
    if not isinstance(model, AnomalyModel):
        raise RegistryError(f"l'artefact de la version {version} n'est pas un AnomalyModel")
    # The sha256 vouches for the artifact only: what the metadata repeats of it (read by the report,
    # GET /models, drift tools) must agree with it, or the metadata was edited.
    held = json.loads(json.dumps(described(model)))
    differ = [name for name, value in held.items() if metadata.get(name) != value]
    if differ:
        raise RegistryError(
            f"métadonnées de la version {version} différentes de son artefact ({', '.join(differ)}) : "
            "métadonnées modifiées, chargement refusé"
        )
    return LoadedModel(model, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.registry", description="Registre des modèles.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("list", help="liste les versions enregistrées")
    cmd.add_argument("--models-dir", default=None, help="dossier du registre (défaut : $MODELS_DIR ou models/)")
    args = parser.parse_args(argv)
    versions = list_versions(args.models_dir)
    if not versions:
        print(f"Aucun modèle dans {models_dir(args.models_dir)}.")
        return 0
    print(f"{'version':<10} {'créée le':<26} {'commit':<10} {'lignes':>8} {'seuil':>8}")
    for v in versions:
        m = read_metadata(v, args.models_dir)
        print(
            f"{v:<10} {m['created_at']:<26} {m['git_commit'][:8]:<10} "
            f"{m['training_data']['rows']:>8} {m['threshold']:>8.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
