from pathlib import Path

import pytest

from fto.orchestrator.config import load_job
from fto.orchestrator.errors import ConfigError
from tests.conftest import ANIMALS, QUICKSTART

JOB = f"""name: demo
data:
  train: {ANIMALS}
  validation: 0.2
hyperparameters:
  epochs: 2
  lora:
    r: 8
backends:
  local:
    device: cpu
eval:
  scorers: [exact_match]
"""


def _error(tmp_path: Path, text: str, backends: str | None = None) -> ConfigError:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_job(path, backends)
    return exc.value


def test_quickstart_loads_with_paths_resolved_against_the_job_file():
    loaded = load_job(QUICKSTART, "local")
    assert loaded.backends == ["local"]
    assert Path(loaded.spec.data.train) == ANIMALS.resolve()


def test_misspelt_nested_key_names_key_line_and_suggestion(tmp_path):
    err = _error(tmp_path, JOB.replace("    r: 8", "    rr: 8"))
    assert (err.line, err.field) == (8, "hyperparameters.lora.rr")
    assert "did you mean 'r'" in str(err)
    assert str(err).startswith(f"{tmp_path / 'job.yaml'}:8: hyperparameters.lora.rr: unknown key")


def test_misspelt_backend_option_is_checked_by_the_backend(tmp_path):
    err = _error(tmp_path, JOB.replace("device: cpu", "devcie: cpu"))
    assert (err.line, err.field) == (11, "backends.local.devcie")
    assert "did you mean 'device'" in str(err)


def test_bad_value_names_its_line(tmp_path):
    err = _error(tmp_path, JOB.replace("epochs: 2", "epochs: two"))
    assert (err.line, err.field) == (6, "hyperparameters.epochs")


def test_missing_data_file_names_the_file_and_line(tmp_path):
    err = _error(tmp_path, JOB.replace(str(ANIMALS), "nowhere.jsonl"))
    assert (err.line, err.field) == (3, "data.train")
    assert "data file not found: nowhere.jsonl" in str(err)


def test_unknown_backend_section_names_its_line_and_the_known_ones(tmp_path):
    err = _error(tmp_path, JOB.replace("  local:", "  loacl:"))
    assert (err.line, err.field) == (10, "backends.loacl")
    assert "unknown backend 'loacl'" in str(
        err
    ) and "available: anthropic, azure, bedrock, fireworks, local, nebius, openai" in str(err)


def test_unknown_backend_flag_lists_the_known_ones(tmp_path):
    err = _error(tmp_path, JOB, backends="nosuch")
    assert "unknown backend 'nosuch'" in str(err)


def test_registered_backend_with_all_defaults_needs_no_section(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(JOB.split("backends:")[0] + "eval:\n  scorers: [exact_match]\n")
    assert load_job(path, "local").backends == ["local"]
    with pytest.raises(ConfigError, match="no backends"):
        load_job(path)


def test_yaml_syntax_error_names_its_line(tmp_path):
    err = _error(tmp_path, JOB.replace("  validation: 0.2", "  validation: [0.2"))
    assert err.line is not None and err.line >= 4
    assert "invalid YAML" in str(err)


def test_secrets_are_refused_in_the_job_file(tmp_path):
    err = _error(tmp_path, JOB.replace("device: cpu", "device: cpu\n    api_key: sk-abcdefghijklmnop"))
    assert err.field == "backends.local.api_key"
    assert "environment" in str(err)
    assert "sk-abc" not in str(err)


def test_unknown_scorer_is_named(tmp_path):
    err = _error(tmp_path, JOB.replace("[exact_match]", "[exact_match, bleu]"))
    assert err.field == "eval.scorers[1]" and err.line == 13


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    err = _error(tmp_path, "- just\n- a list\n")
    assert "mapping" in str(err)


def test_missing_job_file(tmp_path):
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "absent.yaml")
