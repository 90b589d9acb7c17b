"""API keys from the command line; each creation and revocation is audited under ``--par``."""

from __future__ import annotations

import argparse
import getpass
import sys

from . import auth, state
from .settings import SettingsError


def operator_name() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.keys", description="Clés d'API de l'étape 4.")
    parser.add_argument("--db", default=None, help="base d'état (défaut : $STATE_DB ou state/stage4.sqlite)")
    parser.add_argument(
        "--par", default=None, help="qui agit, pour le journal d'audit (défaut : l'utilisateur système)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="crée une clé et l'affiche une seule fois")
    create.add_argument("--name", required=True, help="à qui ou à quoi sert la clé (personne, site, tâche)")
    create.add_argument("--role", required=True, choices=auth.ROLES, help="rôle de la clé")
    revoke = sub.add_parser("revoke", help="révoque une clé par son identifiant (voir list)")
    revoke.add_argument("key_id", help="identifiant public de la clé (16 caractères hexadécimaux)")
    sub.add_parser("list", help="liste les clés (jamais les clés elles-mêmes)")
    args = parser.parse_args(argv)
    by = args.par or operator_name()
    try:
        db = state.db_path(args.db)
        if args.command == "create":
            key = auth.create_key(db, args.name, args.role, by=by)
            # The key alone on stdout, the rest on stderr: KEY=$(make -s stage4-key ...) keeps the key only.
            print(f"Clé créée pour « {args.name.strip()} » (rôle {args.role}) :", file=sys.stderr)
            print(key)
            print(
                "Copiez-la maintenant : elle ne sera plus jamais affichée (seule son empreinte est conservée).\n"
                f"Envoyez-la dans l'en-tête {auth.HEADER}. Identifiant public, pour la révoquer : {key[3:19]}",
                file=sys.stderr,
            )
        elif args.command == "revoke":
            auth.revoke_key(db, args.key_id, by=by)
            print(f"Clé {args.key_id} révoquée : elle est refusée dès la prochaine requête.")
        elif keys := auth.list_keys(db):
            print(f"{'identifiant':<17} {'nom':<24} {'rôle':<9} {'créée le':<30} état")
            for k in keys:
                status = f"révoquée le {k['revoked_at']}" if k["revoked_at"] else "active"
                print(f"{k['key_id']:<17} {k['name']:<24} {k['role']:<9} {k['created_at']:<30} {status}")
        else:
            print(f"Aucune clé dans {db}. Créez-en une : make create-key NAME=... ROLE=...")
    except (auth.KeyRefused, state.AuditUnavailable, SettingsError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
