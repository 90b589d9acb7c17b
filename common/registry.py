"""Model registry on disk: ``models/<version>/model.joblib`` + ``metadata.json``.

A version is a semantic number typed by a person (``1.2.0``) and is never
overwritten. A version commissioned for one equipment (``common.baseline``) adds a
pre-release suffix to the version it comes from (``1.2.0-p101``): it sorts before
``1.2.0``, so a service that serves the latest version keeps serving the general model. Loading recomputes the artifact's sha256 and refuses a mismatch: a
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
from collections.abc import Mapping
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
VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*))?$")


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
    """``"1.10.0"`` -> ``(1, 10, 0)`` (``"1.10.0-p101"`` too); RegistryError if it is not
    ``MAJEUR.MINEUR.CORRECTIF``, optionally followed by ``-suffixe``."""
    match = VERSION_PATTERN.match(str(version))
    if not match:
        raise RegistryError(
            f"version « {version} » invalide : attendu MAJEUR.MINEUR.CORRECTIF, par exemple 1.0.0 "
            "(ou 1.0.0-p101 pour une mise en service)"
        )
    return tuple(int(g) for g in match.groups()[:3])  # type: ignore[return-value]


def version_order(version: str) -> tuple:
    """Sort key of semantic versioning: ``1.0.0-p101`` < ``1.0.0`` < ``1.1.0``; suffixes compared
    part by part (``-``-separated parts kept whole), numbers as numbers."""
    suffix = VERSION_PATTERN.match(version).group(4)
    parts = () if suffix is None else tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in suffix.split("."))
    return (*parse_version(version), suffix is None, parts)


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
    return sorted(found, key=version_order)


def latest_version(path: str | os.PathLike | None = None) -> str:
    versions = list_versions(path)
    if not versions:
        raise RegistryError(f"aucun modèle dans {models_dir(path)} : entraînez-en un (make model)")
    return versions[-1]


def described(model: AnomalyModel) -> dict[str, Any]:
    """What the metadata repeats of a fitted model, and ``load`` checks against the artifact."""
    held = {
        "features": model.feature_names_,
        "window": model.window,
        "params": model.get_params(),
        "threshold": model.threshold_,
        "reference": model.reference_,
    }
    if model.feature_offset_ is not None:  # a commissioned model only: older metadata has no such field
        held["feature_offset"] = list(model.feature_offset_)
    return held


def save(
    model: AnomalyModel,
    version: str,
    training_data: pd.DataFrame | Mapping[str, Any],
    metrics: dict[str, Any] | None = None,
    path: str | os.PathLike | None = None,
    commissioning: Mapping[str, Any] | None = None,
) -> Path:
    """Store a fitted model as a new version and return its folder.

    ``training_data`` is the frame the model learnt from (fingerprinted), or the
    ``training_data`` of a registered version's metadata (a commissioned version keeps the
    one of the version it comes from). ``commissioning`` (``common.baseline``): from which
    version, for which equipment, on which readings; stored as given.
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
            "training_data": dict(training_data)
            if isinstance(training_data, Mapping)
            else {"fingerprint": fingerprint(training_data), "rows": int(len(training_data))},
            **({"commissioning": dict(commissioning)} if commissioning else {}),
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
    print(f"{'version':<14} {'créée le':<26} {'commit':<10} {'lignes':>8} {'seuil':>8}  mise en service")
    for v in versions:
        m = read_metadata(v, args.models_dir)
        commissioned = m.get("commissioning")
        print(
            f"{v:<14} {m['created_at']:<26} {m['git_commit'][:8]:<10} "
            f"{m['training_data']['rows']:>8} {m['threshold']:>8.4f}  "
            + (f"{commissioned['equipment']} (depuis {commissioned['from_version']})" if commissioned else "-")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
