"""Sweeps: a list in `hyperparameters` (or a `sweep:` section, grid or random) is one experiment with one job per
point; bad points are refused with their file, line and field before anything is read or sent."""

from __future__ import annotations

import pytest

from fto.orchestrator.config import load_job
from fto.orchestrator.errors import ConfigError
from fto.orchestrator.store import Store
from fto.orchestrator.sweep import point_spec
from tests.conftest import run_fto

pytestmark = pytest.mark.timeout(60)


def test_a_list_of_learning_rates_is_a_grid_with_one_section_per_point(write_job):
    loaded = load_job(write_job({"hyperparameters": {"learning_rate": [1e-3, 3e-3, 1e-2], "epochs": [2, 4]}}))
    assert loaded.backends == [  # in the file's order of keys (epochs comes first in the quickstart)
        f"local@epochs={e},learning_rate={lr}" for e in (2, 4) for lr in ("0.001", "0.003", "0.01")
    ]
    spec = loaded.spec
    assert spec.sweep is not None and spec.sweep.method == "grid"
    assert spec.backends["local@epochs=4,learning_rate=0.003"].type == "local"
    point = point_spec(spec, "local@epochs=4,learning_rate=0.003").hyperparameters
    assert point.learning_rate == 3e-3 and point.epochs == 4 and point.batch_size == 16  # the rest as the file says
    assert point_spec(spec, "local") is spec  # a section that is no point trains as the file says


def test_target_modules_is_a_list_setting_but_a_list_of_lists_sweeps_it(write_job):
    plain = load_job(write_job({"hyperparameters": {"lora": {"target_modules": ["q_proj", "v_proj"]}}}))
    assert plain.spec.sweep is None and plain.backends == ["local"]
    swept = load_job(
        write_job({"hyperparameters": {"lora": {"r": [4, 8], "target_modules": [["q_proj"], ["v_proj"]]}}})
    )
    assert swept.backends == [
        "local@lora.r=4,lora.target_modules=q_proj", "local@lora.r=4,lora.target_modules=v_proj",
        "local@lora.r=8,lora.target_modules=q_proj", "local@lora.r=8,lora.target_modules=v_proj",
    ]  # fmt: skip
    assert point_spec(swept.spec, swept.backends[3]).hyperparameters.lora.r == 8


def test_random_draws_count_points_from_ranges_the_same_for_the_same_seed(write_job):
    rates = {"low": 1e-4, "high": 1e-2, "log": True}
    sweep = {"method": "random", "count": 5, "seed": 7, "parameters": {"learning_rate": rates, "lora.r": [4, 8, 16]}}
    first = load_job(write_job({"sweep": sweep}))
    again = load_job(write_job({"sweep": sweep}, name="again.yaml"))
    assert first.backends == again.backends and len(first.backends) == 5
    for name in first.backends:
        hp = point_spec(first.spec, name).hyperparameters
        assert 1e-4 <= (hp.learning_rate or 0) <= 1e-2 and hp.lora.r in (4, 8, 16)
    other = load_job(write_job({"sweep": {**sweep, "seed": 8}}, name="other.yaml"))
    assert other.backends != first.backends


def test_random_over_lists_draws_distinct_combinations(write_job):
    loaded = load_job(write_job({"sweep": {"method": "random", "count": 3, "parameters": {"epochs": [1, 2, 3, 4]}}}))
    assert len(set(loaded.backends)) == 3
    with pytest.raises(ConfigError, match="count 5 is more than the 4 combinations"):
        load_job(write_job({"sweep": {"method": "random", "count": 5, "parameters": {"epochs": [1, 2, 3, 4]}}}))


def test_every_chosen_backend_gets_every_point(write_job):
    job = write_job({"hyperparameters": {"learning_rate": [1e-3, 1e-2]},
                     "backends": {"local": {"model": "embedded:tiny-llama"}, "cpu": {"type": "local"}}})  # fmt: skip
    loaded = load_job(job)
    assert loaded.backends == ["local@learning_rate=0.001", "local@learning_rate=0.01",
                               "cpu@learning_rate=0.001", "cpu@learning_rate=0.01"]  # fmt: skip
    assert load_job(job, "cpu").backends == ["cpu@learning_rate=0.001", "cpu@learning_rate=0.01"]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("hyperparameters:\n  epochs: 2\n  learning_rate: [0.001, -1]\n", 3, "hyperparameters.learning_rate",
         "greater than 0 (the point learning_rate=-1)"),
        ("sweep:\n  parameters:\n    learning_rat: [0.1]\n", 3, "sweep.parameters.learning_rat",
         "unknown hyperparameter 'learning_rat'"),
        ("sweep:\n  parameters:\n    learning_rate: {low: 0.001, high: 0.01}\n", 3, "sweep.parameters.learning_rate",
         "a range needs method: random"),
        ("sweep:\n  method: random\n  parameters:\n    epochs: [1, 2]\n", 1, "sweep.count", "needs a count"),
        ("sweep:\n  parameters:\n    epochs: []\n", 3, "sweep.parameters.epochs", "needs at least one value"),
        ("hyperparameters:\n  epochs: [1, 1]\n", 2, "sweep.parameters.epochs", "lists 1 twice"),
        ("hyperparameters:\n  epochs: [1, 2]\nsweep:\n  parameters:\n    epochs: [3]\n", 2,
         "hyperparameters.epochs", "swept both here and in sweep.parameters"),
    ],
)  # fmt: skip
def test_a_bad_sweep_names_file_line_and_field(tmp_path, text, line, field, message):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    job = tmp_path / "job.yaml"
    job.write_text(f"name: s\ndata: {{train: train.jsonl}}\nbackends: {{local: {{}}}}\n{text}")
    with pytest.raises(ConfigError) as found:
        load_job(job)
    assert found.value.file == str(job) and found.value.field == field
    assert found.value.line == line + 3 if line > 1 else found.value.line is not None
    assert message in found.value.message


def test_a_bad_sweep_stops_the_cli_before_anything_is_recorded(write_job):
    result = run_fto("submit", str(write_job({"hyperparameters": {"learning_rate": [0.001, 0]}})))
    assert result.returncode == 2 and "hyperparameters.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr and Store().experiments() == []
