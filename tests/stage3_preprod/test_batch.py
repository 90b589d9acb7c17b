"""The batch job: chunked reading, rejects with reasons, bounded memory, same scores as the whole file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from common.data import DataError, load_csv, read_chunks, write_csv
from common.simulator import simulate
from stage3_preprod import batch
from stage3_preprod.inference_log import read_logs


def skab_text(frame: pd.DataFrame) -> list[list[str]]:
    buffer = io.StringIO()
    write_csv(frame, buffer, with_equipment=True)
    return [line.split(";") for line in buffer.getvalue().split("\r\n")[:-1]]


def two_pumps(hours: float = 6) -> pd.DataFrame:
    """Two equipments interleaved in one file, a fault on the second."""
    a = simulate("normal", seed=1, hours=hours, equipment_id="pompe-a")
    b = simulate("cavitation", seed=2, hours=hours, equipment_id="pompe-b")
    return pd.concat([a, b]).sort_values(["timestamp", "equipment_id"], kind="stable").reset_index(drop=True)


def test_chunked_scores_equal_whole_file_scores(loaded_model, model_env, log_dir, tmp_path):
    frame = two_pumps()
    path = tmp_path / "deux.csv"
    write_csv(frame, path, with_equipment=True)
    expected = loaded_model.model.score(load_csv(path))
    summaries = batch.run(path, tmp_path / "out", chunk_rows=37)  # many chunks, boundaries everywhere
    scored = pd.read_csv(tmp_path / "out" / "deux_scores.csv", sep=";")
    assert summaries[0].statut == "ok" and summaries[0].lignes == len(frame) and summaries[0].rejetees == 0
    np.testing.assert_array_equal(scored["score"].to_numpy(), expected)  # bit for bit, CSV round trip included
    assert set(scored["model_version"]) == {"1.0.0"} and set(scored["decision"]) == {"Normal", "Anomalie"}
    assert summaries[0].anomalies == int((scored["decision"] == "Anomalie").sum()) > 0


def test_bad_rows_are_rejected_with_line_reason_and_text(loaded_model, model_env, log_dir, tmp_path):
    rows = skab_text(simulate("normal", seed=3, hours=2))
    rows[5][4] = "abc"  # Current
    rows[9][5] = ""  # Pressure
    rows[14][0] = "hier"
    rows[20][8] = "9000"  # Voltage
    rows[30] = rows[29]  # duplicated timestamp
    rows[60][0] = rows[40][0]  # earlier than the previous reading, in a later chunk
    path = tmp_path / "saisie.csv"
    path.write_text("\r\n".join(";".join(r) for r in rows) + "\r\n", encoding="utf-8")
    summaries = batch.run(path, tmp_path / "out", chunk_rows=16)
    rejects = pd.read_csv(tmp_path / "out" / "saisie_rejets.csv", sep=";", dtype=str)
    assert rejects["ligne"].astype(int).tolist() == [6, 10, 15, 21, 31, 61]
    reasons = rejects["raison"].tolist()
    assert reasons[0] == "current : « abc » n'est pas un nombre"
    assert reasons[1] == "pressure : valeur manquante"
    assert reasons[2].startswith("datetime : date « hier » illisible")
    assert reasons[3].startswith("voltage : 9000 V est hors de la plage plausible")
    assert "dupliqué" in reasons[4] and "antérieur" in reasons[5]
    assert rejects["contenu"][0] == ";".join(rows[5])
    assert summaries[0].lignes + summaries[0].rejetees == len(rows) - 1  # nothing dropped silently
    summary = pd.read_csv(tmp_path / "out" / "resume.csv", sep=";")
    assert summary.loc[0, "rejetees"] == 6 and summary.loc[0, "modele"] == "1.0.0"


def test_a_bad_file_fails_alone_and_the_job_goes_on(model_env, log_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(simulate("normal", seed=4, hours=2), folder / "bon.csv")
    (folder / "separateur.csv").write_text("datetime,Current\n2020-01-01 00:00:00,1\n", encoding="utf-8")
    (folder / "vide.csv").write_text("", encoding="utf-8")
    assert batch.main([str(folder), "--output", str(tmp_path / "out")]) == 0
    summary = pd.read_csv(tmp_path / "out" / "resume.csv", sep=";").set_index("fichier")
    assert summary.loc["bon.csv", "statut"] == "ok" and summary.loc["bon.csv", "lignes"] == 120
    assert summary.loc["separateur.csv", "statut"] == "échec"
    assert "séparateur incorrect" in summary.loc["separateur.csv", "message"]
    assert "fichier vide" in summary.loc["vide.csv", "message"]
    err = capsys.readouterr().err
    assert "bon.csv" in err and "120 mesures notées" in err  # progress on stderr


def test_fatal_errors_give_a_non_zero_exit_code(model_env, log_dir, tmp_path, monkeypatch, capsys):
    assert batch.main([str(tmp_path / "absent.csv"), "--output", str(tmp_path / "out")]) == 2
    assert "entrée introuvable" in capsys.readouterr().err
    write_csv(simulate("normal", seed=4, hours=2), tmp_path / "bon.csv")
    blocker = tmp_path / "fichier"
    blocker.write_text("")
    assert batch.main([str(tmp_path / "bon.csv"), "--output", str(blocker / "out")]) == 2
    assert "inaccessible en écriture" in capsys.readouterr().err
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "vide"))
    assert batch.main([str(tmp_path / "bon.csv"), "--output", str(tmp_path / "out")]) == 2
    assert "aucun modèle" in capsys.readouterr().err


def test_every_batch_prediction_is_in_the_inference_log(model_env, log_dir, tmp_path):
    write_csv(simulate("normal", seed=5, hours=2), tmp_path / "p.csv")
    batch.run(tmp_path / "p.csv", tmp_path / "out", chunk_rows=25)
    logs = read_logs(log_dir)
    assert len(logs) == 120 and set(logs["source"]) == {"batch_cli"} and logs["request_id"].nunique() == 1


@pytest.mark.slow
def test_memory_stays_bounded_on_a_large_file(tmp_path):
    """200 000 rows read 5 000 at a time: no chunk is larger, and the reader never holds the file."""
    frame = simulate("normal", seed=6, hours=200_000 / 60)
    path = tmp_path / "gros.csv"
    write_csv(frame, path)
    sizes = [len(valid) + len(rejects) for valid, rejects in read_chunks(path, 5000)]
    assert max(sizes) == 5000 and sum(sizes) == len(frame)


def test_file_level_problems_raise(tmp_path):
    with pytest.raises(DataError, match="colonne manquante"):
        list(read_chunks(b"datetime;Current\r\n2020-01-01 00:00:00;1\r\n"))
    with pytest.raises(DataError, match="fichier vide"):
        list(read_chunks(b""))
