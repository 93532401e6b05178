"""examples/quickstart.ipynb, top to bottom through a real Jupyter kernel (nbclient + ipykernel): the local
backend's embedded model and the sim provider, with the comparison rendered as HTML."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
nbformat = pytest.importorskip("nbformat", reason="the dev extra installs nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.timeout(480)
def test_the_quickstart_notebook_runs_and_shows_its_comparison(fto_home):
    notebook = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    assert os.environ["FTO_HOME"] == str(fto_home)  # the kernel inherits it: nothing lands in the user's store
    client = nbclient.NotebookClient(notebook, timeout=400, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO / "examples")}})  # fmt: skip
    client.execute()
    html = [
        output["data"]["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]
    comparisons = [h for h in html if 'id="score-table"' in h]
    assert len(comparisons) == 2  # local, then the sim provider
    assert "local/fine-tuned" in comparisons[0] and "sim/fine-tuned" in comparisons[1]
    assert any("fto-metrics" in h and "<svg" in h for h in html)  # the loss curve
    assert any("fto-experiment" in h and "succeeded" in h for h in html)
    final = notebook.cells[-1].outputs[-1]["data"]["text/plain"]
    assert "animal-classes-hosted" in final and "animal-classes" in final
