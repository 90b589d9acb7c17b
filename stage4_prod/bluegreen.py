"""Blue/green deploy of stage 4's image with Docker Compose: start, deploy a tag, roll back.

A deploy starts the idle colour, waits until Docker reports it healthy, points the proxy at it
(nginx reloads gracefully), checks it through the proxy (else switches back), then stops the old
colour, kept for a rollback. The history's last line (``state/bluegreen.csv``) serves.
Standard library only: a deploy server needs Python 3 and Docker, no virtual env.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
STAGE = Path(__file__).resolve().parent
DEFAULT_TAG = "4.0.0"
DRAIN_S = 2.0  # after the reload, requests already sent to the old colour finish before it stops
CHECKS, CHECK_TIMEOUT_S = 5, 20.0  # consecutive healthy answers through the proxy for a switch to count
WAIT = ["--wait", "--wait-timeout", "180"]  # `up` returns when Docker reports the services healthy
PROXY_URL = f"http://127.0.0.1:{os.environ.get('PORT', '8004')}"


class DeployError(RuntimeError):
    """A step failed; the message (French) says which and what still serves."""


class Entry(NamedTuple):
    time: str
    action: str
    colour: str
    tag: str


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


def history_path() -> Path:
    return Path(os.environ.get("BLUEGREEN_HISTORY") or ROOT / "state" / "bluegreen.csv")


def read_history(path: Path | None = None) -> list[Entry]:
    path = path or history_path()
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [Entry(**row) for row in csv.DictReader(handle, delimiter=";")]


def append_history(action: str, colour: str, tag: str, path: Path | None = None) -> None:
    path = path or history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = Entry(datetime.now(UTC).isoformat(timespec="seconds"), action, colour, tag)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerows([Entry._fields, entry] if new else [entry])


@functools.cache
def compose_command() -> list[str]:
    """Compose on stage 4's file, plus the host-network override when the engine has no bridge."""
    command = ["docker", "compose", "-f", str(STAGE / "docker-compose.yml")]
    if subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True).returncode != 0:
        command += ["-f", str(STAGE / "docker-compose.host.yml")]
    return command


def compose(*args: str, tags: dict[str, str] | None = None, **env: str) -> str:
    """Run ``docker compose ARGS``: each colour's tag the last it ran (history), unless ``tags`` says otherwise."""
    history = read_history()
    for colour in ("blue", "green"):
        tag = (tags or {}).get(colour) or next((e.tag for e in reversed(history) if e.colour == colour), DEFAULT_TAG)
        env[f"{colour.upper()}_TAG"] = tag
    env = {"PROXY_TAG": DEFAULT_TAG, **os.environ, **env}  # the proxy keeps the tag it started with (``up``)
    done = subprocess.run([*compose_command(), *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(f"échec de « docker compose {' '.join(args)} » :\n{done.stdout}{done.stderr}".strip())
    return done.stdout


def build_env(tag: str) -> dict[str, str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"APP_VERSION": tag, "GIT_COMMIT": commit.stdout.strip() or "inconnu", "BUILD_DATE": when}


def served_colour() -> str:
    """The colour the proxy points at (the history may be another machine's)."""
    try:
        return compose("exec", "-T", "proxy", "cat", "/var/lib/proxy/active.colour").strip()
    except DeployError:
        raise DeployError("l'étape 4 ne tourne pas : lancez d'abord make stage4-up") from None


def switch_to(target: str, previous: str | None = None) -> float:
    """Point the proxy at ``target`` and check it; on failure, back to ``previous`` and raise. Returns seconds."""
    began = time.monotonic()
    compose("exec", "-T", "proxy", "switch", target)
    seconds, deadline, streak, last = time.monotonic() - began, time.monotonic() + CHECK_TIMEOUT_S, 0, ""
    try:
        if served_colour() != target:
            raise DeployError(f"le proxy ne désigne pas {target} après la bascule")
        while streak < CHECKS:
            if time.monotonic() > deadline:
                raise DeployError(f"{target} ne répond pas correctement via le proxy ({last})")
            try:
                with urllib.request.urlopen(f"{PROXY_URL}/health", timeout=3) as response:
                    streak = streak + 1 if response.status == 200 else 0
            except OSError as exc:  # URLError included
                streak, last = 0, str(exc)
                time.sleep(0.5)
    except DeployError:
        if previous:
            compose("exec", "-T", "proxy", "switch", previous)
            stop(target)
        raise
    return seconds


def stop(colour: str) -> None:
    compose("stop", "--timeout", "30", colour)  # uvicorn finishes the requests in flight


def up(tag: str, build: bool = True) -> None:
    """Start the colour that serves (the history's last, else blue with ``tag``) and the proxy."""
    history = read_history()
    current = history[-1] if history else Entry("", "up", "blue", tag)
    env = {**build_env(current.tag), "ACTIVE_COLOR": current.colour, "PROXY_TAG": current.tag}
    flags = ["--build" if build else "--no-build", *WAIT]
    compose("up", "-d", *flags, current.colour, "proxy", tags={current.colour: current.tag}, **env)
    switch_to(current.colour)  # the proxy's volume may remember another colour
    if not history:
        append_history("up", current.colour, current.tag)
    print(f"Étape 4 prête : {PROXY_URL} ; sert {current.colour} (image {current.tag}).")


def swap(action: str, target: Entry, current: Entry, recreate: bool) -> str:
    """Start ``target``'s colour with its tag while ``current`` serves, switch, drain, stop ``current``'s."""
    began = time.monotonic()
    flags = ["--no-deps", "--no-build", *(["--force-recreate"] if recreate else []), *WAIT]
    compose("up", "-d", *flags, target.colour, tags={target.colour: target.tag})
    ready_s = time.monotonic() - began
    switch_s = switch_to(target.colour, current.colour)
    time.sleep(DRAIN_S)
    stop(current.colour)
    append_history(action, target.colour, target.tag)
    return f"démarrage et santé {ready_s:.1f} s, bascule {switch_s:.2f} s, total {time.monotonic() - began:.1f} s"


def deploy(tag: str, build: bool = True) -> None:
    history = read_history()
    if not history:
        raise DeployError("rien ne tourne encore : lancez d'abord make stage4-up")
    current, idle = history[-1], other(history[-1].colour)
    if build:
        print(f"Construction de l'image {tag} ({idle})...")
        compose("build", idle, tags={idle: tag}, **build_env(tag))
    print(f"Démarrage de {idle} avec l'image {tag} ; {current.colour} ({current.tag}) continue de servir...")
    timings = swap("deploy", Entry("", "", idle, tag), current, recreate=True)
    print(
        f"Déployé : {idle} sert l'image {tag} ({timings}). {current.colour} ({current.tag}) est arrêté, "
        "gardé pour make rollback."
    )


def rollback() -> None:
    history = read_history()
    if not history:
        raise DeployError("aucun déploiement dans l'historique : rien à annuler")
    current = history[-1]
    previous = next((e for e in reversed(history) if e.colour == other(current.colour)), None)
    if previous is None:
        raise DeployError(f"{other(current.colour)} n'a jamais servi : rien à quoi revenir")
    print(f"Redémarrage de {previous.colour} ({previous.tag}) ; {current.colour} ({current.tag}) sert encore...")
    timings = swap("rollback", previous, current, recreate=False)
    print(
        f"Retour arrière : {previous.colour} sert de nouveau l'image {previous.tag} ({timings}). "
        f"{current.colour} est arrêté."
    )


def status() -> None:
    history = read_history()
    if not history:
        print(f"Aucun historique ({history_path()}) : make stage4-up pour démarrer.")
        return
    for e in history[-10:]:
        print(f"{e.time}  {e.action:<8} {e.colour:<5} {e.tag}")
    print(f"Sert : {history[-1].colour} (image {history[-1].tag}).")


def exec_in_stack(command: list[str]) -> int:
    """Run ``command`` in the colour that serves: same state database, same logs, same model registry."""
    colour = served_colour()
    return subprocess.run([*compose_command(), "exec", "-T", colour, *command], cwd=ROOT).returncode


def copy_logs(output: Path) -> None:
    """Copy the stack's inference log (CSV files) into ``output``, for logs-summary and report."""
    colour = served_colour()
    output.mkdir(parents=True, exist_ok=True)
    compose("cp", f"{colour}:/app/logs/.", str(output.resolve()))
    print(f"Journaux de l'étape 4 ({colour}) copiés dans {output}/")


def down() -> None:
    compose("down")
    print("Étape 4 arrêtée (volumes et historique gardés).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.bluegreen", description="Déploiement bleu/vert.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text, run in (
        ("up", "démarre la couleur active et le proxy", up),
        ("deploy", "déploie une image", deploy),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--tag", required=name == "deploy", default=DEFAULT_TAG, help="version x.y.z de l'image")
        command.add_argument("--no-build", action="store_true", help="image déjà présente (tirée d'un registre)")
        command.set_defaults(run=lambda a, run=run: run(a.tag, build=not a.no_build))
    sub.add_parser("rollback", help="revient à la couleur et à l'image d'avant").set_defaults(run=lambda a: rollback())
    sub.add_parser("status", help="historique et couleur active").set_defaults(run=lambda a: status())
    execute = sub.add_parser("exec", help="lance une commande dans la couleur qui sert (clés, vérification de l'audit)")
    execute.add_argument(
        "cmd", nargs=argparse.REMAINDER, help="la commande, par exemple python -m stage4_prod.keys list"
    )
    execute.set_defaults(run=lambda a: exec_in_stack(a.cmd))
    logs = sub.add_parser("logs", help="copie les journaux de la pile dans un dossier local")
    logs.add_argument("--output", default="logs", help="dossier de destination (défaut : logs)")
    logs.set_defaults(run=lambda a: copy_logs(Path(a.output)))
    sub.add_parser("down", help="arrête tout (volumes gardés)").set_defaults(run=lambda a: down())
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d+\.\d+\.\d+", getattr(args, "tag", DEFAULT_TAG)):  # a version typed by a person
        print(f"Erreur : version « {args.tag} » invalide (attendu : x.y.z, par exemple 4.1.0)", file=sys.stderr)
        return 2
    try:
        return args.run(args) or 0  # exec returns its command's exit code
    except DeployError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
