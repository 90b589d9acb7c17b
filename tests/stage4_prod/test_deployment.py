"""The served-model pointer: checked deploys, instant rollbacks, every worker follows."""

from __future__ import annotations

import multiprocessing
import shutil
import threading
import time
from contextlib import closing

import pytest

from common.model import AnomalyModel
from common.registry import save
from stage4_prod import audit, deployment, state


@pytest.fixture(scope="module")
def registry(tmp_path_factory, models_dir, training_frame):
    """1.0.0 (the session's), 1.1.0 (another seed), 1.2.0 (corrupted artifact), 1.3.0 (alarms on everything)."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(models_dir / "1.0.0", root / "1.0.0")
    save(AnomalyModel(random_state=1).fit(training_frame), "1.1.0", training_frame, path=root)
    save(AnomalyModel(random_state=2).fit(training_frame), "1.2.0", training_frame, path=root)
    with open(root / "1.2.0" / "model.joblib", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    insane = AnomalyModel(random_state=3).fit(training_frame)
    insane.threshold_ = 0.0
    save(insane, "1.3.0", training_frame, path=root)
    return root


@pytest.fixture
def db(tmp_path, registry):
    path = tmp_path / "state.sqlite"
    deployment.initialize(path, "1.0.0")
    return path


def actions(db) -> list[str]:
    """Every change of the pointer, oldest first."""
    with closing(state.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT action FROM deployment ORDER BY id")]


def test_initialize_writes_once(db):
    assert deployment.initialize(db, "1.1.0").version == "1.0.0"  # a second worker starting reads, does not write
    assert actions(db) == ["initial"]


def test_deploy_then_rollbacks_undo_in_order(db, registry):
    pointer, loaded = deployment.deploy(db, "1.1.0", "admin", registry)
    assert (pointer.version, pointer.previous_version, loaded.version) == ("1.1.0", "1.0.0", "1.1.0")
    assert deployment.current(db).version == "1.1.0"
    back = deployment.rollback(db, "admin")
    assert (back.version, back.previous_version) == ("1.0.0", None)
    with pytest.raises(deployment.DeploymentError, match="aucune version précédente") as exc:
        deployment.rollback(db, "admin")
    assert exc.value.status == 409
    kinds = [(r["kind"], r["model_version"]) for r in audit.query(db)]
    assert kinds == [("deploy", "1.0.0"), ("deploy", "1.1.0"), ("rollback", "1.0.0")]
    assert audit.query(db, kind="deploy")[1]["details"]["check"]["alarm_rate"] <= deployment.MAX_ALARM_RATE
    assert audit.verify(db).ok


def test_rollback_after_two_deploys_goes_back_one_step_at_a_time(db, registry):
    deployment.deploy(db, "1.1.0", "admin", registry, check=lambda loaded: {})
    deployment.rollback(db, "admin")
    deployment.deploy(db, "1.1.0", "admin", registry, check=lambda loaded: {})
    with pytest.raises(deployment.DeploymentError, match="déjà servie"):
        deployment.deploy(db, "1.1.0", "admin", registry)
    assert deployment.rollback(db, "admin").version == "1.0.0"


@pytest.mark.parametrize(
    ("version", "status", "reason"),
    [("1.2.0", 422, "sha256"), ("1.3.0", 422, "mesures normales"), ("9.9.9", 404, "introuvable")],
)
def test_bad_candidates_are_refused_and_change_nothing(db, registry, version, status, reason):
    with pytest.raises(deployment.DeploymentError, match=reason) as exc:
        deployment.deploy(db, version, "admin", registry)
    assert exc.value.status == status and str(exc.value).startswith(f"déploiement de {version} refusé")
    assert deployment.current(db).version == "1.0.0"
    refused = audit.query(db, kind="deploy_refused")
    assert len(refused) == 1 and refused[0]["details"]["version"] == version


def test_cache_follows_the_pointer_and_keeps_versions(db, registry):
    cache = deployment.ModelCache(db, registry, check_interval_s=0)
    first = cache.get()
    assert first.version == "1.0.0"
    deployment.deploy(db, "1.1.0", "admin", registry, check=lambda loaded: {})
    second = cache.get()
    assert second.version == "1.1.0"
    deployment.rollback(db, "admin")
    assert cache.get() is first  # each version loaded once; switches back and forth from memory
    deployment.deploy(db, "1.1.0", "admin", registry, check=lambda loaded: {})
    assert cache.get() is second


def test_cache_keeps_at_most_keep_loaded_versions_dropping_the_oldest(db, registry, monkeypatch):
    monkeypatch.setattr(deployment, "KEEP_LOADED", 2)
    cache = deployment.ModelCache(db, registry, check_interval_s=0)
    for version in ("1.0.0", "1.1.0", "1.3.0"):
        if version != "1.0.0":
            deployment.deploy(db, version, "admin", registry, check=lambda loaded: {})
        assert cache.get().version == version
    assert list(cache._loaded) == ["1.1.0", "1.3.0"]  # 1.0.0, the oldest and no longer served, went


def test_cache_checks_the_pointer_at_most_every_interval(db, registry):
    cache = deployment.ModelCache(db, registry, check_interval_s=30)
    assert cache.get().version == "1.0.0"
    deployment.deploy(db, "1.1.0", "admin", registry, check=lambda loaded: {})
    assert cache.get().version == "1.0.0"  # not yet: the pointer is read at most every 30 s
    cache._next_check = 0
    assert cache.get().version == "1.1.0"


def test_an_unloadable_pointer_keeps_the_current_model(db, registry, caplog):
    cache = deployment.ModelCache(db, registry, check_interval_s=0)
    assert cache.get().version == "1.0.0"
    conn = state.connect(db)  # a pointer moved behind the checks' back
    conn.execute(
        "INSERT INTO deployment (version, previous_version, action, deployed_at, by) VALUES ('1.2.0', '1.0.0', 'deploy', 'x', 'y')"
    )
    conn.close()
    assert cache.get().version == "1.0.0" and cache.get().version == "1.0.0"
    assert caplog.text.count("cannot load model 1.2.0") == 1


def _follow(db, registry, started, results) -> None:
    cache = deployment.ModelCache(db, registry, check_interval_s=0.05)
    cache.get()
    started.set()
    seen, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline:
        version = cache.get().version
        if not seen or seen[-1][0] != version:
            seen.append((version, time.time()))
        if [v for v, _ in seen] == ["1.0.0", "1.1.0", "1.0.0"]:
            break
        time.sleep(0.005)
    results.put(seen)


def test_another_process_sees_deploy_and_rollback_within_a_second(db, registry):
    context = multiprocessing.get_context("spawn")
    started, results = context.Event(), context.Queue()
    worker = context.Process(target=_follow, args=(db, registry, started, results))
    worker.start()
    assert started.wait(30)
    deployment.deploy(db, "1.1.0", "admin", registry)
    time.sleep(1.5)  # the worker loads 1.1.0 from disk once
    t0 = time.time()
    deployment.rollback(db, "admin")
    seen = results.get(timeout=30)
    worker.join(10)
    assert [v for v, _ in seen] == ["1.0.0", "1.1.0", "1.0.0"]
    switch_s = seen[-1][1] - t0
    print(f"\nrollback seen by another process after {1000 * switch_s:.0f} ms")
    assert switch_s < 1.0


def test_concurrent_requests_through_deploy_and_rollback_never_fail(db, registry):
    cache = deployment.ModelCache(db, registry, check_interval_s=0.01)
    cache.get()
    errors, versions, stop = [], set(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                loaded = cache.get()
                versions.add(loaded.version)
                assert loaded.model.threshold_ > 0
                time.sleep(0.0005)  # a request does work between two lookups; a bare loop starves the GIL
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for t in threads:
        t.start()
    timings = []
    for _ in range(3):
        deployment.deploy(db, "1.1.0", "admin", registry, check=lambda loaded: {})
        time.sleep(0.2)
        t0 = time.perf_counter()
        deployment.rollback(db, "admin")
        timings.append(time.perf_counter() - t0)
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and versions == {"1.0.0", "1.1.0"}
    print(f"\nrollback() call: max {1000 * max(timings):.1f} ms")
    assert max(timings) < 1.0  # the bound: rollback in under a second


def test_the_served_model_is_the_pointers_else_the_configured_version_else_the_latest(tmp_path, registry):
    fresh = tmp_path / "nouvelle" / "state.sqlite"
    assert deployment.load_served(fresh, registry).version == "1.3.0"  # no pointer yet: the latest
    assert deployment.load_served(fresh, registry, "1.1.0").version == "1.1.0"
    assert not fresh.exists()  # a command that only scores does not create the state database
    cache = deployment.ModelCache(fresh, registry, check_interval_s=0)
    assert cache.start("1.1.0").version == "1.1.0"  # the first start writes the pointer...
    assert deployment.current(fresh).version == "1.1.0"
    assert deployment.load_served(fresh, registry, "1.0.0").version == "1.1.0"  # ...which wins from then on
    assert deployment.ModelCache(fresh, registry, check_interval_s=0).start("1.0.0").version == "1.1.0"
    assert actions(fresh) == ["initial"]
