"""The bodies the service receives and sends: the web form's fields, the API's answers.

A reading itself is ``common.readings.Reading``, declared once for every stage. Stage 4
adds the bodies of feedback and key creation, and the key errors every protected route
documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AliasPath, BaseModel, ConfigDict, Field, create_model

from common.schema import EQUIPMENT_ID_MAX_LENGTH, SENSORS

# Every field is optional text: a missing or wrong value is reported by us, in French, naming the field.
# ``api_key``: the operator key, typed by the person (a browser form cannot send a header).
ReadingForm = create_model(
    "ReadingForm", equipment_id=(str, ""), api_key=(str, ""), **{s.name: (str, "") for s in SENSORS}
)


class Prediction(BaseModel):
    """Le résultat d'une mesure."""

    score: float = Field(description="Plus il est élevé, plus la mesure s'écarte du fonctionnement normal appris.")
    decision: str = Field(description="« Anomalie » si le score dépasse le seuil, sinon « Normal ».")
    threshold: float = Field(description="Seuil d'alarme, fixé à l'entraînement sur des données normales.")
    model_version: str = Field(description="Version du modèle qui a calculé le score.")
    equipment_id: str = Field(description="Identifiant de l'équipement")
    request_id: str = Field(description="Identifiant de la requête, à citer pour signaler un problème.")


class Health(BaseModel):
    """L'état du service."""

    status: str = Field(description="« ok » si le service répond avec un modèle chargé.")
    model_version: str | None = Field(description="Version du modèle chargé.")


class VersionInfo(BaseModel):
    """Ce qui tourne exactement : de quoi reproduire un résultat ou signaler un problème."""

    app_version: str = Field(description="Version du service (numéro sémantique choisi par l'équipe).")
    model_version: str | None = Field(description="Version du modèle chargé (null si aucun).")
    git_commit: str = Field(description="Commit Git du code de l'image.")
    build_date: str = Field(description="Date de construction de l'image (UTC).")


class FieldError(BaseModel):
    field: str = Field(description="Le champ à corriger (« body » : la requête entière).")
    message: str = Field(description="Ce qui ne va pas, en français.")


class ErrorBody(BaseModel):
    """Une erreur : message en français, champs à corriger le cas échéant, identifiant de la requête."""

    detail: str
    errors: list[FieldError] = []
    request_id: str


class BatchItem(BaseModel):
    """Le résultat d'une mesure d'un lot : score et décision, ou les erreurs qui l'ont fait refuser."""

    index: int = Field(description="Position de la mesure dans la liste envoyée (à partir de 0).")
    score: float | None = None
    decision: str | None = None
    equipment_id: str | None = None
    errors: list[FieldError] | None = None


class Counts(BaseModel):
    """Ce que partagent les résultats d'un lot et d'un fichier."""

    model_version: str
    threshold: float
    request_id: str
    scored: int = Field(description="Mesures notées.")
    rejected: int = Field(description="Mesures refusées, chacune avec sa raison.")
    anomalies: int


class BatchResult(Counts):
    """Le résultat d'un lot de mesures."""

    received: int = Field(description="Mesures reçues.")
    results: list[BatchItem]


class CsvRow(BaseModel):
    line: int = Field(description="Ligne du fichier (l'en-tête est la ligne 1).")
    timestamp: str
    equipment_id: str
    score: float
    decision: str


class CsvReject(BaseModel):
    line: int = Field(description="Ligne du fichier (l'en-tête est la ligne 1).")
    reason: str = Field(description="Raison du refus, en français, qui nomme le champ.")
    content: str = Field(description="La ligne telle qu'elle a été lue.")


class CsvResult(Counts):
    """Le résultat d'un fichier : chaque ligne notée, chaque ligne rejetée avec sa raison."""

    filename: str
    results: list[CsvRow]
    rejects: list[CsvReject]


class ModelInfo(BaseModel):
    version: str
    created_at: str
    git_commit: str = "inconnu"
    threshold: float
    training_rows: int = Field(validation_alias=AliasPath("training_data", "rows"))
    sha256: Annotated[str, AfterValidator(lambda digest: digest[:12])] = Field(
        "", description="Début de l'empreinte sha256 de l'artefact (vérifiée au chargement)."
    )
    served: bool = Field(description="Version servie par ce service.")


class ModelList(BaseModel):
    """Les versions du registre, de la plus ancienne à la plus récente."""

    served: str | None = Field(description="Version servie (pointeur de déploiement partagé).")
    models: list[ModelInfo]


def error_doc(description: str) -> dict[str, Any]:
    """An error response as /docs shows it."""
    return {"model": ErrorBody, "description": description}


JSON_BODY_ERRORS = {  # a JSON body that cannot be read
    400: error_doc("Corps illisible : le JSON n'est pas un texte UTF-8."),
    413: error_doc("Corps de requête trop volumineux."),
}
NOT_JSON = {415: error_doc("Le corps n'est pas déclaré comme JSON.")}  # routes that depend on require_json


KEY_ERRORS = {  # every route that needs a key (auth.require)
    401: error_doc("Clé d'API absente, inconnue, mal formée ou révoquée."),
    403: error_doc("Clé valide, mais son rôle n'autorise pas cette action."),
    429: error_doc("Trop de requêtes pour cette clé : réessayez après le délai de l'en-tête Retry-After."),
}


class FeedbackIn(BaseModel):
    """Le retour d'un technicien : une alarme confirmée ou infirmée, ou une panne que le modèle a manquée."""

    model_config = ConfigDict(extra="forbid")
    verdict: str = Field(description="« confirmed », « rejected » (une alarme) ou « missed » (une panne manquée).")
    request_id: str | None = Field(None, max_length=64, description="Requête qui a levé l'alarme.")
    equipment_id: str | None = Field(
        None, max_length=EQUIPMENT_ID_MAX_LENGTH, description="Identifiant de l'équipement"
    )
    fault_at: datetime | None = Field(None, description="Heure de la panne manquée (ISO 8601).")
    comment: str | None = Field(None, max_length=500)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="À qui ou à quoi sert la clé (personne, site, tâche).")
    role: str = Field(description="reader, operator, auditor ou admin.")
