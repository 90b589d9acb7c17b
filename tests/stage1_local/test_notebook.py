"""The prototype notebook runs top to bottom, headless, and writes a usable model file."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import joblib
import nbclient
import nbformat
import pytest
from jupyter_client.manager import KernelManager

from common.data import frame_from_readings
from common.schema import EXAMPLE_READING

NOTEBOOK = Path(__file__).resolve().parents[2] / "stage1_local" / "prototype.ipynb"
KERNEL = "python3"


def test_notebook_kernel_is_the_interpreter_running_the_tests():
    # Otherwise the notebook would run against other packages than the pinned .venv.
    command = KernelManager(kernel_name=KERNEL).format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve()


def test_notebook_is_saved_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run as Jupyter would open it: from its own folder, without PYTHONPATH."""
    output = tmp_path_factory.mktemp("notebook") / "model_notebook.joblib"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NOTEBOOK_OUTPUT", str(output))
        env.setenv("MPLBACKEND", "Agg")
        env.delenv("PYTHONPATH", raising=False)
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=120, kernel_name=KERNEL, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        )
        client.execute()  # raises CellExecutionError on the first failing cell
    return nb, output


@pytest.mark.slow
def test_notebook_runs_without_error_and_draws_the_fault_plot(executed):
    nb, _ = executed
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs)


@pytest.mark.slow
def test_notebook_model_file_loads_and_scores_a_reading(executed):
    _, output = executed
    assert output.is_file()
    model = joblib.load(output)
    normal = float(model.score(frame_from_readings([EXAMPLE_READING]))[0])
    shaking = float(model.score(frame_from_readings([{**EXAMPLE_READING, "accelerometer1_rms": 0.3}]))[0])
    assert math.isfinite(normal) and math.isfinite(model.threshold_)
    assert shaking > normal
