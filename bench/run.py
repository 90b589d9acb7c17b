"""``make bench``: every performance figure of docs/annexes/performances.md, in one run, on 127.0.0.1 only.

    python -m bench.run              # scorer, model loading, the stages that exist, served by uvicorn
    python -m bench.run --peers      # the same, plus mlflow models serve (make bench-peers)
    python -m bench.run --quick      # a short run to check the harness (smaller batches, fewer requests)

Starts every server it measures (free port, its own process, stopped by its id) and the
load generator in another process (``bench.load``). Writes ``bench/results/latest.json``
and prints the tables in Markdown. Ratios are only meaningful within one run: the same
machine, at the same moment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import scorer
from bench.servers import ROOT, Server, free_port, run_load
from bench.targets import FLOOR, STAGES, Scenario, Service, temporary_workdir
from common.registry import load

RESULTS = ROOT / "bench" / "results" / "latest.json"
MODEL_VERSION = "1.0.0"
# Rest between a server's first /health 200 and its first measured request: the services prepare the
# scikit-learn forest and scipy in background threads after startup (startup itself is measured apart),
# and a measure taken meanwhile shares the interpreter with them. mlflow gets the same rest.
SETTLE_S = 5.0


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 2**20, 1), "os": platform.platform()}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def versions() -> dict:
    import fastapi
    import numpy
    import pandas
    import sklearn
    import uvicorn

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "git_commit": commit.stdout.strip() or "inconnu",
        "work_tree_modified": bool(dirty.stdout.strip()),
    }


def client_ceiling(quick: bool) -> list[dict]:
    """The load generator against ``bench.echo``: the most it can measure on this machine."""
    port = free_port()
    with Server("echo", [sys.executable, "-m", "bench.echo", "--port", str(port)], "/health") as server:
        server.start(port)
        return [run_load(port, "/predict", b"{}", c, 2000 if not quick else 500) for c in (1, 16)]


def measure_service(service: Service, env: dict[str, str], quick: bool) -> dict:
    """Serve with each worker count, run every ready scenario at each concurrency, stop."""
    result: dict = {"key": service.key, "label": service.label, "runs": []}
    result["not_ready"] = [{"scenario": s.name, "note": s.note} for s in service.scenarios if not s.ready]
    if not (ROOT / service.folder).is_dir():
        result["skipped"] = f"dossier {service.folder}/ absent"
        return result
    ready = [s for s in service.scenarios if s.ready]
    if not ready:
        result["skipped"] = "aucune entrée prête (voir bench/targets.py)"
        return result
    for workers in service.workers:
        with temporary_workdir() as workdir:
            result["runs"].append(measure_run(service, env, workers, Path(workdir), ready, quick))
        print(f"  {service.key} workers={workers}: done", file=sys.stderr, flush=True)
    return result


def measure_run(
    service: Service, env: dict[str, str], workers: int, workdir: Path, ready: list[Scenario], quick: bool
) -> dict:
    """One server start with ``workers``: its own state (``prepare``), every ready scenario, then stopped."""
    run: dict = {"workers": workers, "scenarios": []}
    extra_env, headers = service.prepare(workdir) if service.prepare else ({}, {})
    port = free_port()
    server = Server(
        f"{service.key}-w{workers}", service.command(port, workers), service.health, {**env, **service.env, **extra_env}
    )
    try:
        run["startup_s"] = server.start(port)
        time.sleep(SETTLE_S / (5 if quick else 1))
        for scenario in ready:
            body = scenario.body() if scenario.body else None
            for clients in scenario.concurrency:
                run["scenarios"].append(load_scenario(port, scenario, body, headers, clients, quick))
    except (RuntimeError, subprocess.SubprocessError) as exc:
        run["error"] = str(exc)
    finally:
        server.stop()
    return run


def load_scenario(
    port: int, scenario: Scenario, body: bytes | None, headers: dict[str, str], clients: int, quick: bool
) -> dict:
    requests = max(2, scenario.requests * (2 if clients > 1 else 1) // (5 if quick else 1))
    measured = run_load(
        port,
        scenario.path,
        body,
        clients,
        requests,
        method=scenario.method,
        content_type=scenario.content_type,
        warmup=scenario.warmup // (5 if quick else 1),
        max_seconds=scenario.max_seconds,
        headers=headers,
        websocket=scenario.websocket,
    )
    return {
        "scenario": scenario.name,
        "rows": scenario.rows,
        "rows_per_s": measured["requests_per_s"] * scenario.rows,
        **measured,
    }


# ---- Targets of issue 18 (ratios within one run) ----------------------------------------------------------


def find(results: dict, key: str, workers: int, clients: int, prefix: str = "POST") -> dict | None:
    for service in results["services"]:
        if service["key"] != key:
            continue
        for run in service["runs"]:
            if run["workers"] != workers:
                continue
            for s in run.get("scenarios", []):
                if s["concurrency"] == clients and s["scenario"].startswith(prefix):
                    return s
    return None


def startup(results: dict, key: str, workers: int) -> float | None:
    for service in results["services"]:
        for run in service["runs"] if service["key"] == key else []:
            if run["workers"] == workers:
                return run.get("startup_s")
    return None


def verdict(ok: bool | None) -> str:
    return "non mesuré" if ok is None else ("atteint" if ok else "manqué")


def compare(ours: dict | None, base: dict | None, what: str, goal: float, unit: str) -> tuple[str, bool | None, str]:
    """``ours[what]`` against ``base[what]``: at most ``goal`` times for a p50, at least for a throughput."""
    if not (ours and base):
        return "non mesuré", None, ""
    ratio = ours[what] / base[what]
    if what == "p50_ms":
        ok, gap = ratio <= goal, f"x{ratio / goal:.2f} au-dessus"
        measured = f"{ours[what]:.3f} contre {base[what]:.3f} ms : x{ratio:.2f}"
    else:
        ok, gap = ratio >= goal, f"il manque x{goal / ratio:.2f}"
        measured = f"{ours[what]:,.0f} contre {base[what]:,.0f} {unit} : x{ratio:.2f}".replace(",", " ")
    return measured, ok, "" if ok else gap


def targets(results: dict) -> list[dict]:
    rows = []

    def add(target: str, measured: str, ok: bool | None, gap: str = "") -> None:
        rows.append({"target": target, "measured": measured, "verdict": verdict(ok), "gap": gap})

    raw = {e["rows"]: e for e in results.get("scorer", [])}.get(1_000_000, {}).get("sklearn_forest")
    one, batch, stream, rps = "POST", "POST /predict/batch", "WebSocket /stream", "requests_per_s"
    # (target, ours, base, what is compared, goal, unit): ours and base as (service, workers, clients, request)
    table = [
        (
            "Étape 2, une mesure, p50 ≤ 1,5x le plancher FastAPI (1 worker, 1 client)",
            ("stage2", 1, 1, one),
            ("floor", 1, 1, one),
            "p50_ms",
            1.5,
            "ms",
        ),
        (
            "Étape 2, une mesure, 16 clients, 1 worker ≥ 0,6x le plancher",
            ("stage2", 1, 16, one),
            ("floor", 1, 16, one),
            rps,
            0.6,
            "requêtes/s",
        ),
        (
            "Étape 4, une mesure (clé operator, ligne d'audit), p50 ≤ 1,6x l'étape 2 (1 worker, 1 client)",
            ("stage4", 1, 1, one),
            ("stage2", 1, 1, one),
            "p50_ms",
            1.6,
            "ms",
        ),
        (
            "Étape 4, une mesure, 16 clients, 2 workers ≥ 0,6x l'étape 2",
            ("stage4", 2, 16, one),
            ("stage2", 2, 16, one),
            rps,
            0.6,
            "requêtes/s",
        ),
        (
            "Étape 3, lot de 1 000 mesures, 1 client ≥ 0,5x scikit-learn brut (lignes/s sur 1 M lignes)",
            ("stage3", 1, 1, batch),
            None,
            "rows_per_s",
            0.5,
            "lignes/s",
        ),
        (
            "Étape 4, lot de 1 000 mesures, 1 client ≥ 0,3x scikit-learn brut (lignes/s sur 1 M lignes)",
            ("stage4", 1, 1, batch),
            None,
            "rows_per_s",
            0.3,
            "lignes/s",
        ),
        (
            "Étape 3, flux, une connexion ≥ 0,6x ses requêtes/s HTTP d'une mesure (1 worker)",
            ("stage3", 1, 1, stream),
            ("stage3", 1, 1, one),
            rps,
            0.6,
            "messages ou requêtes/s",
        ),
        (
            "Étape 2 ≥ 5x mlflow models serve (une mesure, 16 clients, 2 workers)",
            ("stage2", 2, 16, one),
            ("mlflow", 2, 16, one),
            rps,
            5.0,
            "requêtes/s",
        ),
    ]
    for key, label, request in (
        ("stage2", "une mesure", one),
        ("stage3", "une mesure", one),
        ("stage3", "lot", batch),
        ("stage4", "une mesure", one),
        ("stage4", "lot", batch),
    ):
        table.append(
            (f"{key}, {label}, 16 clients : 2 workers ≥ 1,5x 1 worker",
             (key, 2, 16, request), (key, 1, 16, request), rps, 1.5, "requêtes/s")
        )  # fmt: skip
    for target, ours, base, what, goal, unit in table:
        add(target, *compare(find(results, *ours), find(results, *base) if base else raw, what, goal, unit))
    for key in ("stage2", "stage3", "stage4"):
        for workers in (1, 2):
            s = startup(results, key, workers)
            if s is not None:
                add(f"Démarrage ≤ 2 s ({key}, {workers} worker(s), processus → /health 200)", f"{s:.2f} s", s <= 2.0)
    loading = results.get("model_loading")
    if loading:
        ms = loading["registry_load"]["median_ms"]
        add("Chargement du modèle ≤ 20 ms (registry.load)", f"{ms:.1f} ms", ms <= 20.0)
    return rows


# ---- Report ---------------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}".replace(",", " ")


def errors_detail(s: dict) -> str:
    return f" ({'; '.join(s['error_kinds'])})" if s["errors"] and s.get("error_kinds") else ""


def markdown(results: dict) -> str:
    out = [f"# make bench — {results['started_at']} ({results['command']})", ""]
    m, v = results["machine"], results["versions"]
    out += [
        f"Machine : {m['nproc']} cœurs, {m['cpu']}, {m['memory_gib']} Gio ; charge (1, 5, 15 min) "
        f"au début {results['load_average_start']}, à la fin {results['load_average_end']}.",
        f"Versions : Python {v['python']}, numpy {v['numpy']}, pandas {v['pandas']}, scikit-learn {v['scikit-learn']}, "
        f"FastAPI {v['fastapi']}, uvicorn {v['uvicorn']} ; commit {v['git_commit']}"
        + (" (arbre de travail modifié)" if v["work_tree_modified"] else ""),
        "",
        "## Scoreur en processus (médianes)",
        "",
        "| lignes | scikit-learn brut (forêt) | pipeline + scikit-learn | projet `model.score` | projet lignes/s | x pipeline | x forêt brute |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in results.get("scorer", []):
        out.append(
            f"| {e['rows']:,} | {fmt(e['sklearn_forest']['median_ms'], 3)} ms | {fmt(e['sklearn_pipeline']['median_ms'], 3)} ms "
            f"| {fmt(e['project']['median_ms'], 3)} ms | {fmt(e['project']['rows_per_s'], 0)} "
            f"| x{e['speedup_vs_pipeline']:.1f} | x{e['speedup_vs_forest']:.1f} |".replace(",", " ")
        )
    b = results.get("one_reading")
    if b:
        out += [
            "",
            "Une mesure dans le code de l'étape 2, sans HTTP (médianes) : "
            + ", ".join(f"{k} {v['median_ms']:.3f} ms" for k, v in b.items())
            + ".",
        ]
    loading = results.get("model_loading")
    if loading:
        out += [
            f"Chargement du modèle : registry.load {loading['registry_load']['median_ms']:.1f} ms (médiane de 5), "
            f"premier score ensuite {loading['first_score_ms']:.1f} ms."
        ]
    out += [
        "",
        "## Services (générateur de charge : " + results.get("client", "?") + ")",
        "",
        "| service | workers | démarrage | requête | clients | p50 | p99 | requêtes/s | lignes/s | erreurs |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results.get("client_ceiling", []):
        out.append(
            f"| plafond du client (bench.echo) | — | — | écho | {c['concurrency']} | {fmt(c['p50_ms'], 3)} ms "
            f"| {fmt(c['p99_ms'], 3)} ms | {fmt(c['requests_per_s'], 0)} | — | {c['errors']} |"
        )
    skipped = []
    for service in results["services"]:
        if "skipped" in service:
            skipped.append(f"- {service['label']} : ignoré, {service['skipped']}.")
        for s in service.get("not_ready", []):
            if "skipped" not in service:
                skipped.append(f"- {service['label']}, {s['scenario']} : pas encore branché ({s['note']}).")
        for run in service["runs"]:
            if "error" in run:
                skipped.append(f"- {service['label']}, {run['workers']} worker(s) : erreur, {run['error']}")
            for s in run.get("scenarios", []):
                out.append(
                    f"| {service['label']} | {run['workers']} | {fmt(run.get('startup_s'))} s | {s['scenario']} "
                    f"| {s['concurrency']} | {fmt(s['p50_ms'], 3)} ms | {fmt(s['p99_ms'], 3)} ms | {fmt(s['requests_per_s'], 0)} "
                    f"| {fmt(s['rows_per_s'], 0)} | {s['errors']}{errors_detail(s)}{' (tronqué)' if s['truncated'] else ''} |"
                )
    out += [
        "",
        "## Cibles de l'issue 18 (rapports dans ce passage)",
        "",
        "| cible | mesuré | verdict | écart |",
        "|---|---|---|---|",
    ]
    out += [f"| {t['target']} | {t['measured']} | {t['verdict']} | {t['gap']} |" for t in results["targets"]]
    if skipped:
        out += ["", "## Non mesuré", "", *skipped]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--peers", action="store_true", help="mesure aussi mlflow models serve (make bench-peers)")
    parser.add_argument("--quick", action="store_true", help="passe courte pour vérifier le banc")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    models_dir = os.environ.get("MODELS_DIR")
    load(MODEL_VERSION, models_dir)  # fails early, in French, without a model (make model)
    env = {"MODEL_VERSION": MODEL_VERSION, **({"MODELS_DIR": models_dir} if models_dir else {})}
    started = time.perf_counter()
    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.run" + (" --peers" if args.peers else "") + (" --quick" if args.quick else ""),
        "machine": machine(),
        "versions": versions(),
        "load_average_start": load_average(),
    }

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {name}", file=sys.stderr, flush=True)

    step("plafond du générateur de charge")
    results["client_ceiling"] = client_ceiling(args.quick)
    results["client"] = results["client_ceiling"][0]["client"]
    step("chargement du modèle")
    results["model_loading"] = scorer.model_loading(MODEL_VERSION, models_dir)
    loaded = load(MODEL_VERSION, models_dir)
    step("une mesure, sans HTTP")
    results["one_reading"] = scorer.one_reading_breakdown(loaded)
    step("scikit-learn et le scoreur du projet")
    results["scorer"] = scorer.scorer_comparison(loaded, scorer.QUICK_SIZES if args.quick else scorer.SIZES)
    services = [FLOOR, *STAGES]
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        if args.peers:
            from bench.peers import mlflow_service

            step("empaquetage du modèle pour mlflow")
            try:
                services.append(mlflow_service(Path(workdir), MODEL_VERSION, models_dir))
                results["versions"]["mlflow"] = services[-1].label
            except RuntimeError as exc:
                results["peers_error"] = str(exc)
        results["services"] = []
        for service in services:
            step(f"service {service.key}")
            results["services"].append(measure_service(service, env, args.quick))
    results["load_average_end"] = load_average()
    results["seconds"] = time.perf_counter() - started
    results["targets"] = targets(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report = markdown(results)
    if "peers_error" in results:
        report += f"\n\nmlflow non mesuré : {results['peers_error']}"
    print(report)
    step(f"résultats écrits dans {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
