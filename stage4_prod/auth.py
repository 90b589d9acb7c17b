"""API keys, roles and the per-key rate limit, as FastAPI dependencies.

A key is ``pk_<public id: 16 hex digits>.<32 random bytes>``; only its sha256 is stored (256 random
bits need no slow hash, which protects secrets people choose). Logs and the audit trail name the
public id, never the key. Duties are separated: an admin does not predict, an operator does not audit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from . import audit, state

logger = logging.getLogger(__name__)

HEADER = "X-API-Key"
KEY_PATTERN = re.compile(r"pk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
ROLES = ("reader", "operator", "auditor", "admin")
ACTIONS = {  # action -> what a French message calls it
    "monitoring": "consulter la surveillance",
    "predict": "demander des prédictions",
    "feedback": "confirmer ou infirmer une alarme",
    "audit": "lire le journal d'audit",
    "deploy": "déployer un modèle",
    "rollback": "revenir au modèle précédent",
    "keys": "gérer les clés d'API",
}
PERMISSIONS: dict[str, frozenset[str]] = {
    "reader": frozenset({"monitoring"}),
    "operator": frozenset({"monitoring", "predict", "feedback"}),
    "auditor": frozenset({"monitoring", "audit"}),
    "admin": frozenset({"monitoring", "deploy", "rollback", "keys"}),
}
UNKNOWN_KEY = "clé d'API absente ou inconnue : envoyez une clé valide dans l'en-tête X-API-Key"
DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 40
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()  # compared when the id is unknown: same work either way


class KeyRefused(state.Refused):
    """A key operation was refused (unknown role, unknown key...)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (a person or a system), its role and its public id."""

    name: str
    role: str
    key_id: str

    def can(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, ())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db_path, name: str, role: str, by: str = "cli") -> str:
    """Create a key for ``name`` with ``role``, audited; the key is returned once and never stored."""
    name = name.strip()
    if role not in ROLES:
        raise KeyRefused(f"rôle « {role} » inconnu (rôles : {', '.join(ROLES)})")
    if not name or len(name) > 64 or not name.isprintable():
        raise KeyRefused("nom invalide : de 1 à 64 caractères imprimables")
    key_id = secrets.token_hex(8)
    key = f"pk_{key_id}.{secrets.token_urlsafe(32)}"
    with closing(state.connect(db_path)) as conn, state.transaction(conn):
        conn.execute(
            "INSERT INTO api_keys (key_id, name, role, key_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, name, role, hash_key(key), state.now_iso(), by),
        )
        details = {"key_id": key_id, "name": name, "role": role}
        audit.append(conn, [{"kind": "key_create", "actor": by, "details": details}])
    logger.info("API key %s created for %s (role %s) by %s", key_id, name, role, by)
    return key


def revoke_key(db_path, key_id: str, by: str = "cli") -> None:
    """Revoke a key by its public id, audited; any process refuses it from its next request."""
    with closing(state.connect(db_path)) as conn, state.transaction(conn):
        row = conn.execute("SELECT name, revoked_at FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise KeyRefused(f"aucune clé d'identifiant « {key_id} »", 404)
        if row["revoked_at"]:
            raise KeyRefused(f"la clé {key_id} ({row['name']}) est déjà révoquée depuis {row['revoked_at']}", 409)
        conn.execute(
            "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?", (state.now_iso(), by, key_id)
        )
        audit.append(conn, [{"kind": "key_revoke", "actor": by, "details": {"key_id": key_id, "name": row["name"]}}])
    logger.info("API key %s revoked by %s", key_id, by)


def list_keys(db_path) -> list[dict[str, str | None]]:
    """Every key, oldest first, never the key nor its hash."""
    rows = state.reader(db_path).execute(
        "SELECT key_id, name, role, created_at, created_by, revoked_at, revoked_by FROM api_keys ORDER BY rowid"
    )
    return [dict(row) for row in rows]


def authenticate(db_path, presented_key: str | None) -> Principal | None:
    """The Principal of an active key, else None. Read on every call, no cache: a revocation counts at once."""
    match = KEY_PATTERN.fullmatch(presented_key or "")
    if match is None:
        return None
    key_id = match.group(1)
    row = (
        state.reader(db_path)
        .execute("SELECT name, role, key_hash, revoked_at FROM api_keys WHERE key_id = ?", (key_id,))
        .fetchone()
    )
    if not hmac.compare_digest(hash_key(presented_key), row["key_hash"] if row else _DUMMY_HASH) or row is None:
        logger.warning("refused API key: unknown id or wrong secret (id %s)", key_id)
        return None
    if row["revoked_at"]:
        logger.warning("refused API key %s (%s): revoked", key_id, row["name"])
        return None
    return Principal(name=row["name"], role=row["role"], key_id=key_id)


class RateLimiter:
    """A token bucket per key, per worker: it stops a runaway client, it is not billing."""

    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST, clock=time.monotonic):
        self.rate_per_s, self.burst, self.clock = rate_per_s, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, time of last update)
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> float:
        """Take one token: 0.0 if allowed, else the seconds to wait (a rate of 0 switches the limit off)."""
        if self.rate_per_s <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
            self._buckets[key_id] = (tokens - 1.0 if tokens >= 1.0 else tokens, now)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s


class AuthError(HTTPException):
    """A refused request: 401, 403 or 429, with a French detail that never holds the key."""

    @property
    def status(self) -> int:
        return self.status_code


class Authenticator:
    """Key, role and rate checks, for the HTTP dependencies, the form and the WebSocket handshake."""

    def __init__(self, db_path, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST):
        self.db_path = db_path
        self.limiter = RateLimiter(rate_per_s, burst)

    def check(self, presented_key: str | None, action: str) -> Principal:
        """The caller, if its key is active, its role may do ``action`` and its bucket has a token."""
        principal = authenticate(self.db_path, presented_key)
        if principal is None:
            raise AuthError(401, UNKNOWN_KEY, {"WWW-Authenticate": f'ApiKey header="{HEADER}"'})
        if not principal.can(action):
            allowed = ", ".join(role for role in ROLES if action in PERMISSIONS[role])
            raise AuthError(
                403, f"rôle « {principal.role} » non autorisé pour {ACTIONS[action]} (rôle(s) autorisé(s) : {allowed})"
            )
        wait = self.limiter.acquire(principal.key_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            logger.warning("rate limit reached for key %s (%s)", principal.key_id, principal.name)
            raise AuthError(
                429,
                f"trop de requêtes pour cette clé : au plus {self.limiter.rate_per_s:g} par seconde "
                f"en moyenne, réessayez dans {seconds} s",
                {"Retry-After": str(seconds)},
            )
        return principal


api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="Clé d'API (make create-key)")


def require(action: str) -> Callable[..., Principal]:
    """A dependency that lets through the keys whose role may do ``action``, and returns the caller."""

    async def dependency(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Principal:
        request.state.principal = request.app.state.auth.check(key, action)  # for the request log
        return request.state.principal

    return dependency


# Endpoint signatures say what they need: ``def predict(..., who: Operator)``.
Reader = Annotated[Principal, Depends(require("monitoring"))]
Operator = Annotated[Principal, Depends(require("predict"))]
Technician = Annotated[Principal, Depends(require("feedback"))]
Auditor = Annotated[Principal, Depends(require("audit"))]
Deployer = Annotated[Principal, Depends(require("deploy"))]
RollbackAdmin = Annotated[Principal, Depends(require("rollback"))]
KeyAdmin = Annotated[Principal, Depends(require("keys"))]
