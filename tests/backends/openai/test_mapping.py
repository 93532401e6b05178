"""Our job schema in OpenAI's terms: "auto" passed through, ranges refused, statuses and events converted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fto.backends.openai import mapping
from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobEvent, JobSpec, JobStatus, Metric


def _spec(**overrides) -> JobSpec:
    return JobSpec.model_validate({"name": "m", "data": {"train": "x.jsonl"}, **overrides})


def test_auto_is_passed_through_and_numbers_are_mapped():
    assert mapping.method(_spec(), "openai") == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
        },
    }
    dpo = mapping.method(_spec(method="dpo", hyperparameters={"epochs": 2, "beta": 0.5}), "openai")
    assert dpo == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": 0.5}
        },
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hyperparameters": {"epochs": 51}}, "hyperparameters.epochs = 51 is outside OpenAI's range 1–50"),
        ({"hyperparameters": {"batch_size": 257}}, "hyperparameters.batch_size = 257 is outside OpenAI's range 1–256"),
        ({"method": "dpo", "hyperparameters": {"beta": 2.5}}, "beta = 2.5 is outside OpenAI's range (0, 2]"),
    ],
)
def test_out_of_range_values_are_refused(overrides, message):
    with pytest.raises(UnsupportedError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        mapping.method(_spec(**overrides), "openai")


def test_metadata_keeps_room_for_our_id_and_openais_limits():
    assert mapping.metadata(_spec(metadata={"team": "ml"}), "job-1", "openai") == {"team": "ml", "fto_job_id": "job-1"}
    with pytest.raises(UnsupportedError, match="at most 16 keys"):
        mapping.metadata(_spec(metadata={f"k{i}": "v" for i in range(16)}), "job-1", "openai")
    with pytest.raises(UnsupportedError, match="values of at most 512"):
        mapping.metadata(_spec(metadata={"k": "v" * 513}), "job-1", "openai")


def test_statuses_including_paused_and_unknown_ones():
    assert mapping.status("validating_files") == JobStatus.VALIDATING
    assert mapping.status("paused") == JobStatus.PAUSED
    assert mapping.status("succeeded") == JobStatus.SUCCEEDED
    assert mapping.status("some_future_status") == JobStatus.RUNNING  # keep polling, do not give up


def test_events_become_messages_or_metrics():
    metric = mapping.event(
        SimpleNamespace(id="e1", created_at=1700000000, level="info", message="Step 3/10", type="metrics",
                        data={"step": 3, "total_steps": 10, "train_loss": 1.5, "full_valid_loss": 1.7})
    )  # fmt: skip
    assert isinstance(metric, Metric) and (metric.step, metric.total_steps, metric.loss, metric.valid_loss) == (
        3,
        10,
        1.5,
        1.7,
    )
    warning = mapping.event(
        SimpleNamespace(id="e2", created_at=1700000001, level="warn", message="slow", type="message", data=None)
    )
    assert isinstance(warning, JobEvent) and warning.level == "warning" and warning.data == {"id": "e2"}


def test_local_training_settings_are_reported_as_ignored():
    spec = _spec(hyperparameters={"learning_rate": 1e-4, "lora": {"r": 8}, "epochs": 3})
    assert mapping.ignored_settings(spec) == ["learning_rate", "lora"]
