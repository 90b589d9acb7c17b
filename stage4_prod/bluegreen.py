"""Blue/green deploy of stage 4's image with Docker Compose: start, deploy a tag, roll back.

    python -m stage4_prod.bluegreen up --tag 4.0.0     # the active colour and the proxy
    python -m stage4_prod.bluegreen deploy --tag 4.1.0 # the idle colour gets 4.1.0, then serves
    python -m stage4_prod.bluegreen rollback           # back to the colour (and tag) that served before
    python -m stage4_prod.bluegreen status
    python -m stage4_prod.bluegreen exec python -m stage4_prod.keys create --name N --role operator
    python -m stage4_prod.bluegreen logs --output logs  # the inference log of the stack, copied here
    python -m stage4_prod.bluegreen down

A deploy builds the image (unless ``--no-build``: a release pulls both images, the API's and the
proxy's, from a registry instead, and nothing is ever built on the deploying machine),
starts the idle colour with it, waits until Docker reports it healthy, points the proxy at it
(``switch`` rewrites nginx's upstream and reloads gracefully: requests in flight finish on the old
colour), checks the service through the proxy, then stops the old colour. A failed check switches
back at once and leaves the old colour serving.

The old colour is stopped, not removed: its container and image stay, so a rollback only starts
it again (a few seconds, while the current colour keeps serving) and switches. Keeping it running
idle would make a rollback instant but doubles the memory and lets the stopped version drift from
the state database (it would hold its own model cache); the issue asks for a stop, and the
rollback stays without downtime either way.

The deploy history (time, action, colour, tag) is a CSV file on the deploying machine,
``$BLUEGREEN_HISTORY`` or ``state/bluegreen.csv``: its last line is what serves, and a rollback
goes back to the last line of the other colour. Only the standard library, so that a deploy
server needs Python 3 and Docker, not the project's virtual environment.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = Path(__file__).resolve().parent
COLOURS = ("blue", "green")
DEFAULT_TAG = "4.0.0"
TAG = re.compile(r"^\d+\.\d+\.\d+$")  # a version typed by a person, as the image tag
FIELDS = ["time", "action", "colour", "tag"]
DRAIN_S = 2.0  # after the reload, requests already sent to the old colour finish before it stops
CHECKS = 5  # consecutive healthy answers through the proxy before a switch counts as done


class DeployError(RuntimeError):
    """A step failed; the message (French) says which and what still serves."""


@dataclass(frozen=True)
class Entry:
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


def append_history(action: str, colour: str, tag: str, path: Path | None = None) -> Entry:
    path = path or history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = Entry(datetime.now(UTC).isoformat(timespec="seconds"), action, colour, tag)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, delimiter=";")
        if new:
            writer.writeheader()
        writer.writerow(entry.__dict__)
    return entry


def last_of(history: list[Entry], colour: str) -> Entry | None:
    return next((e for e in reversed(history) if e.colour == colour), None)


def compose_command() -> list[str]:
    """Compose on stage 4's file, plus the host-network override when the engine has no bridge."""
    command = ["docker", "compose", "-f", str(STAGE / "docker-compose.yml")]
    bridge = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True)
    if bridge.returncode != 0:
        command += ["-f", str(STAGE / "docker-compose.host.yml")]
    return command


def git_commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else "inconnu"


class Stack:
    """The Compose project: which tag each colour runs, and the commands on it."""

    def __init__(self, history: list[Entry], tags: dict[str, str] | None = None):
        self.compose = compose_command()
        self.tags = {c: (last_of(history, c).tag if last_of(history, c) else DEFAULT_TAG) for c in COLOURS}
        self.tags.update(tags or {})
        self.proxy_url = f"http://127.0.0.1:{os.environ.get('PORT', '8004')}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PROXY_TAG": DEFAULT_TAG,  # the proxy runs the tag it was started with (``up``)
            **os.environ,
            "BLUE_TAG": self.tags["blue"],
            "GREEN_TAG": self.tags["green"],
            **extra,
        }

    def run(self, *args: str, env: dict[str, str] | None = None, quiet: bool = False) -> str:
        done = subprocess.run([*self.compose, *args], cwd=ROOT, env=env or self.env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise DeployError(f"échec de « docker compose {' '.join(args)} » :\n{done.stdout}{done.stderr}".strip())
        if not quiet and done.stdout.strip():
            print(done.stdout.strip())
        return done.stdout

    def build(self, colour: str) -> None:
        tag = self.tags[colour]
        print(f"Construction de l'image {tag} ({colour})...")
        build_env = self.env(
            APP_VERSION=tag,
            GIT_COMMIT=git_commit(),
            BUILD_DATE=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.run("build", colour, env=build_env, quiet=True)

    def start(self, colour: str, recreate: bool) -> float:
        """Start one colour and wait until Docker reports it healthy; returns the seconds it took."""
        began = time.monotonic()
        flags = ["--force-recreate"] if recreate else []
        self.run("up", "-d", "--no-deps", "--no-build", *flags, "--wait", "--wait-timeout", "180", colour, quiet=True)
        return time.monotonic() - began

    def served_colour(self) -> str:
        return self.run("exec", "-T", "proxy", "cat", "/var/lib/proxy/active.colour", quiet=True).strip()

    def switch(self, colour: str) -> float:
        began = time.monotonic()
        self.run("exec", "-T", "proxy", "switch", colour, quiet=True)
        return time.monotonic() - began

    def check_through_proxy(self, colour: str, timeout_s: float = 20.0) -> None:
        """CHECKS healthy answers in a row through the proxy, and the proxy pointing at ``colour``."""
        if self.served_colour() != colour:
            raise DeployError(f"le proxy ne désigne pas {colour} après la bascule")
        deadline, streak, last = time.monotonic() + timeout_s, 0, ""
        while streak < CHECKS:
            if time.monotonic() > deadline:
                raise DeployError(f"{colour} ne répond pas correctement via le proxy ({last})")
            try:
                with urllib.request.urlopen(f"{self.proxy_url}/health", timeout=3) as response:
                    streak = streak + 1 if response.status == 200 else 0
            except (urllib.error.URLError, OSError) as exc:
                streak, last = 0, str(exc)
                time.sleep(0.5)

    def stop(self, colour: str) -> None:
        self.run("stop", "--timeout", "30", colour, quiet=True)  # uvicorn finishes the requests in flight


def switch_to(stack: Stack, target: str, previous: str) -> float:
    """Point the proxy at ``target`` and check it; on failure, back to ``previous`` and raise."""
    seconds = stack.switch(target)
    try:
        stack.check_through_proxy(target)
    except DeployError:
        stack.switch(previous)
        stack.stop(target)
        raise
    return seconds


def up(tag: str, build: bool = True) -> Entry:
    """Start the colour that serves (the history's last, else blue with ``tag``) and the proxy."""
    history = read_history()
    current = history[-1] if history else Entry("", "up", "blue", tag)
    stack = Stack(history, {current.colour: current.tag})
    env = stack.env(
        ACTIVE_COLOR=current.colour,
        APP_VERSION=current.tag,
        PROXY_TAG=current.tag,
        GIT_COMMIT=git_commit(),
        BUILD_DATE=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    flags = ["--build"] if build else ["--no-build"]  # a release pulled both images: never build there
    stack.run("up", "-d", *flags, "--wait", "--wait-timeout", "180", current.colour, "proxy", env=env, quiet=True)
    if stack.served_colour() != current.colour:  # the proxy's volume may remember another colour
        stack.switch(current.colour)
    stack.check_through_proxy(current.colour)
    if not history:
        append_history("up", current.colour, current.tag)
    print(f"Étape 4 prête : {stack.proxy_url} ; sert {current.colour} (image {current.tag}).")
    return current


def deploy(tag: str, build: bool = True) -> Entry:
    history = read_history()
    if not history:
        raise DeployError("rien ne tourne encore : lancez d'abord make stage4-up")
    current = history[-1]
    idle = other(current.colour)
    stack = Stack(history, {idle: tag})
    began = time.monotonic()
    if build:
        stack.build(idle)
    print(f"Démarrage de {idle} avec l'image {tag} ; {current.colour} ({current.tag}) continue de servir...")
    ready_s = stack.start(idle, recreate=True)
    switch_s = switch_to(stack, idle, current.colour)
    time.sleep(DRAIN_S)
    stack.stop(current.colour)
    entry = append_history("deploy", idle, tag)
    print(
        f"Déployé : {idle} sert l'image {tag} (démarrage et santé {ready_s:.1f} s, bascule {switch_s:.2f} s, "
        f"total {time.monotonic() - began:.1f} s). {current.colour} ({current.tag}) est arrêté, "
        "gardé pour make rollback."
    )
    return entry


def rollback() -> Entry:
    history = read_history()
    if not history:
        raise DeployError("aucun déploiement dans l'historique : rien à annuler")
    current = history[-1]
    previous = last_of(history, other(current.colour))
    if previous is None:
        raise DeployError(f"{other(current.colour)} n'a jamais servi : rien à quoi revenir")
    stack = Stack(history)
    began = time.monotonic()
    print(f"Redémarrage de {previous.colour} ({previous.tag}) ; {current.colour} ({current.tag}) sert encore...")
    ready_s = stack.start(previous.colour, recreate=False)
    switch_s = switch_to(stack, previous.colour, current.colour)
    time.sleep(DRAIN_S)
    stack.stop(current.colour)
    entry = append_history("rollback", previous.colour, previous.tag)
    print(
        f"Retour arrière : {previous.colour} sert de nouveau l'image {previous.tag} (santé {ready_s:.1f} s, "
        f"bascule {switch_s:.2f} s, total {time.monotonic() - began:.1f} s). {current.colour} est arrêté."
    )
    return entry


def status() -> None:
    history = read_history()
    if not history:
        print(f"Aucun historique ({history_path()}) : make stage4-up pour démarrer.")
        return
    for e in history[-10:]:
        print(f"{e.time}  {e.action:<8} {e.colour:<5} {e.tag}")
    print(f"Sert : {history[-1].colour} (image {history[-1].tag}).")


def serving(stack: Stack) -> str:
    """The colour that serves now, as the proxy says (the history may be another machine's)."""
    try:
        return stack.served_colour()
    except DeployError:
        raise DeployError("l'étape 4 ne tourne pas : lancez d'abord make stage4-up") from None


def exec_in_stack(command: list[str]) -> int:
    """Run ``command`` in the colour that serves: same state database, same logs, same model registry."""
    if not command:
        raise DeployError("indiquez la commande à lancer dans le conteneur")
    stack = Stack(read_history())
    colour = serving(stack)
    return subprocess.run([*stack.compose, "exec", "-T", colour, *command], cwd=ROOT, env=stack.env()).returncode


def copy_logs(output: Path) -> None:
    """Copy the stack's logs (inference log CSV files) into ``output``, for logs-summary and report."""
    stack = Stack(read_history())
    colour = serving(stack)
    output.mkdir(parents=True, exist_ok=True)
    stack.run("cp", f"{colour}:/app/logs/.", str(output.resolve()), quiet=True)
    print(f"Journaux de l'étape 4 ({colour}) copiés dans {output}/")


def down() -> None:
    Stack(read_history()).run("down", quiet=True)
    print("Étape 4 arrêtée (volumes et historique gardés).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.bluegreen", description="Déploiement bleu/vert.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("up", "démarre la couleur active et le proxy"), ("deploy", "déploie une image")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--tag", required=name == "deploy", default=DEFAULT_TAG, help="version x.y.z de l'image")
        command.add_argument("--no-build", action="store_true", help="image déjà présente (tirée d'un registre)")
    sub.add_parser("rollback", help="revient à la couleur et à l'image d'avant")
    sub.add_parser("status", help="historique et couleur active")
    run = sub.add_parser("exec", help="lance une commande dans la couleur qui sert (clés, vérification de l'audit)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="la commande, par exemple python -m stage4_prod.keys list")
    logs = sub.add_parser("logs", help="copie les journaux de la pile dans un dossier local")
    logs.add_argument("--output", default="logs", help="dossier de destination (défaut : logs)")
    sub.add_parser("down", help="arrête tout (volumes gardés)")
    args = parser.parse_args(argv)
    tag = getattr(args, "tag", DEFAULT_TAG)
    if not TAG.match(tag):
        print(f"Erreur : version « {tag} » invalide (attendu : x.y.z, par exemple 4.1.0)", file=sys.stderr)
        return 2
    try:
        if args.command == "up":
            up(args.tag, build=not args.no_build)
        elif args.command == "deploy":
            deploy(args.tag, build=not args.no_build)
        elif args.command == "rollback":
            rollback()
        elif args.command == "status":
            status()
        elif args.command == "exec":
            return exec_in_stack(args.cmd)
        elif args.command == "logs":
            copy_logs(Path(args.output))
        else:
            down()
    except DeployError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
