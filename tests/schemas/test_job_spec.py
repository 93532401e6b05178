import pytest
from pydantic import ValidationError

from fto.schemas import Conversation, JobSpec, JobStatus, Message


def test_minimal_job_gets_serious_defaults():
    spec = JobSpec.model_validate({"name": "demo", "data": {"train": "train.jsonl"}})
    assert spec.method == "sft"
    assert spec.data.validation == 0.1
    assert spec.hyperparameters.epochs == "auto"
    assert spec.hyperparameters.lora.target_modules == "all-linear"
    assert spec.eval is not None and spec.eval.scorers == ["exact_match", "token_f1"]


def test_misspelt_key_is_rejected_not_ignored():
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({"name": "demo", "data": {"train": "t.jsonl"}, "hyperparamters": {}})
    assert exc.value.errors()[0]["type"] == "extra_forbidden"
    assert exc.value.errors()[0]["loc"] == ("hyperparamters",)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_validation_fraction_must_be_between_zero_and_one(fraction):
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"name": "demo", "data": {"train": "t.jsonl", "validation": fraction}})


def test_auto_is_the_only_string_a_number_field_takes():
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"name": "demo", "data": {"train": "t"}, "hyperparameters": {"epochs": "many"}})
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"name": "demo", "data": {"train": "t"}, "hyperparameters": {"batch_size": 0}})


def test_backend_sections_keep_their_own_options_for_the_backend_to_check():
    spec = JobSpec.model_validate(
        {"name": "demo", "data": {"train": "t"}, "backends": {"local": {"model": "m", "device": "cpu"}}}
    )
    assert spec.backends["local"].model == "m"
    assert spec.backends["local"].options() == {"device": "cpu"}


def test_terminal_statuses():
    assert {s for s in JobStatus if s.terminal} == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


def test_prompt_and_reference_split_at_the_last_assistant_turn():
    conversation = Conversation(
        messages=[
            Message(role="user", content="hi"),
            Message(role="assistant", content="hello"),
            Message(role="user", content="2+2?"),
            Message(role="assistant", content="4"),
        ]
    )
    prompt, reference = conversation.prompt_and_reference()
    assert [m.content for m in prompt] == ["hi", "hello", "2+2?"]
    assert reference.content == "4"
