"""The keys command line: a key printed once, listed without it, revoked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from stage4_prod import auth, keys

ROOT = Path(__file__).resolve().parents[2]


def test_create_list_revoke(tmp_path, capsys):
    db = str(tmp_path / "state.sqlite")
    assert keys.main(["--db", db, "--par", "admin", "create", "--name", "atelier-nord", "--role", "operator"]) == 0
    printed = capsys.readouterr()
    key = printed.out.strip()  # alone on stdout, so that a script can capture it
    assert re.fullmatch(r"pk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}", key)
    assert "Copiez-la maintenant : elle ne sera plus jamais affichée" in printed.err
    assert auth.authenticate(db, key).name == "atelier-nord"
    assert keys.main(["--db", db, "list"]) == 0
    listing = capsys.readouterr().out
    assert key[3:19] in listing and "atelier-nord" in listing and "active" in listing
    assert key.split(".")[1] not in listing
    assert keys.main(["--db", db, "revoke", key[3:19]]) == 0
    assert "révoquée" in capsys.readouterr().out
    assert auth.authenticate(db, key) is None
    keys.main(["--db", db, "list"])
    assert "révoquée le" in capsys.readouterr().out


def test_errors_are_french_with_exit_code_2(tmp_path, capsys):
    db = str(tmp_path / "state.sqlite")
    assert keys.main(["--db", db, "revoke", "0123456789abcdef"]) == 2
    assert "Erreur : aucune clé d'identifiant" in capsys.readouterr().err
    assert keys.main(["--db", db, "list"]) == 0
    assert "Aucune clé" in capsys.readouterr().out


def test_module_runs_as_a_command(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "STATE_DB": str(tmp_path / "s.sqlite"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "stage4_prod.keys", "create", "--name", "tableau", "--role", "reader"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert "rôle reader" in done.stderr and done.stdout.startswith("pk_") and (tmp_path / "s.sqlite").is_file()
    wrong = subprocess.run(
        [sys.executable, "-m", "stage4_prod.keys", "create", "--name", "x", "--role", "root"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert wrong.returncode == 2 and "root" in wrong.stderr


def test_a_bad_setting_is_a_french_error_naming_it_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STATE_DB", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("AUDIT_SYNC", "OFF")
    assert keys.main(["list"]) == 2
    assert "AUDIT_SYNC : « OFF » refusé : valeurs admises NORMAL, FULL, EXTRA" in capsys.readouterr().err
