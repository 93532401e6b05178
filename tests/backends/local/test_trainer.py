"""The training loop's pieces, in process, on the embedded tiny Llama: exact packing, reproducibility."""

import copy
import dataclasses

import pytest
import torch

from fto.backends.local.embedded import build_tokenizer
from fto.backends.local.packing import bucketed_rows, packed_row, padded_rows, token_logprobs
from fto.backends.local.tokenized import encode
from fto.backends.local.train import Trainer, TrainSettings
from fto.orchestrator.data.load import read_dataset
from tests.conftest import ANIMALS

ROWS = read_dataset(str(ANIMALS))[:64]


@pytest.fixture(scope="module")
def setup():
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(m.content or "" for r in ROWS for m in r.messages)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    examples = [encode(tokenizer, r.model_dump(exclude_none=True), 256) for r in ROWS]
    return model, tokenizer, examples


def _loss_and_grads(model, row):
    model.zero_grad()
    logp, _, _ = token_logprobs(model, row)
    loss = -logp.sum() / logp.numel()
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_packed_loss_and_gradients_equal_the_padded_ones(setup):
    model, tokenizer, examples = setup
    batch = examples[:16]
    assert len({len(e.input_ids) for e in batch}) > 1  # variable lengths: padding would be real
    packed_loss, packed_grads = _loss_and_grads(model, packed_row(batch, torch.device("cpu")))
    padded_loss, padded_grads = _loss_and_grads(model, padded_rows(batch, tokenizer.pad_token_id, torch.device("cpu")))
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    for name, grad in packed_grads.items():
        assert torch.allclose(grad, padded_grads[name], atol=1e-6, rtol=1e-4), name
    single = [token_logprobs(model, packed_row([e], torch.device("cpu")))[0] for e in batch]
    assert packed_loss == pytest.approx(
        float(-torch.cat(single).detach().sum() / sum(s.numel() for s in single)), rel=1e-5
    )


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_attention_per_example_equals_the_block_diagonal_mask_in_loss_and_gradients(setup, kv_heads):
    """varlen.py (the CPU default for packed rows) computes what SDPA's block-diagonal mask does, GQA included;
    without the boundaries (padded batches, generation) it is SDPA itself."""
    from transformers import LlamaForCausalLM

    from fto.backends.local import varlen

    model, tokenizer, examples = setup
    config = copy.deepcopy(model.config)
    config.num_key_value_heads = kv_heads
    torch.manual_seed(1)
    masked = LlamaForCausalLM(config)
    per_example = copy.deepcopy(masked)
    per_example.set_attn_implementation(varlen.register())
    assert per_example.config._attn_implementation == "fto_varlen"
    batch = examples[:16]
    row = packed_row(batch, torch.device("cpu"))
    assert row.inputs["cu_seq_lens_q"].tolist()[-1] == row.tokens
    masked_loss, masked_grads = _loss_and_grads(masked, row)
    varlen_loss, varlen_grads = _loss_and_grads(per_example, row)
    assert varlen_loss == pytest.approx(masked_loss, rel=1e-5)
    for name, grad in varlen_grads.items():
        assert torch.allclose(grad, masked_grads[name], atol=1e-6, rtol=1e-4), name
    # the boundaries are what it attends within: one boundary for the whole row lets examples see each other
    whole = torch.tensor([0, row.tokens], dtype=torch.int32)
    crossing = dataclasses.replace(row, inputs={**row.inputs, "cu_seq_lens_q": whole, "cu_seq_lens_k": whole})
    assert _loss_and_grads(per_example, crossing)[0] != pytest.approx(masked_loss, rel=1e-4)
    padded = padded_rows(batch, tokenizer.pad_token_id, torch.device("cpu"))
    assert _loss_and_grads(per_example, padded)[0] == pytest.approx(_loss_and_grads(masked, padded)[0], rel=1e-6)


def test_buckets_group_similar_lengths_within_the_budget_padding_included(setup):
    _, tokenizer, examples = setup
    groups = bucketed_rows(examples, 256, tokenizer.pad_token_id, torch.device("cpu"))
    assert sorted(i for g in groups for i in g) == list(range(len(examples)))
    for g in groups:
        widths = [len(examples[i].input_ids) for i in g]
        assert max(widths) * len(g) <= 256 or len(g) == 1
        assert widths == sorted(widths)
    padded = sum(max(len(examples[i].input_ids) for i in g) * len(g) for g in groups)
    real = sum(len(e.input_ids) for e in examples)
    assert padded < 1.15 * real  # neighbours in length: little padding


def _train(model, examples, **overrides):
    settings = TrainSettings(
        **{
            "epochs": 2,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.1,
            "seed": 3,
            "pad_token_id": 1,
            "batch_tokens": 256,
            **overrides,
        }
    )
    trainer = Trainer(copy.deepcopy(model), examples, examples[:8], settings, torch.device("cpu"))
    metrics = []
    trainer.run(on_metric=metrics.append, should_stop=lambda: False, on_checkpoint=lambda: None, on_event=print)
    return trainer, metrics


def test_the_same_seed_gives_the_same_loss_curve_and_packing_changes_nothing_but_speed(setup):
    model, _, examples = setup
    _, first = _train(model, examples)
    _, again = _train(model, examples)
    _, padded = _train(model, examples, layout="padded")
    _, buckets = _train(model, examples, layout="buckets")  # sorted by length, padded to neighbours
    _, micro = _train(model, examples, batch_tokens=64)  # several micro-batches per step, accumulated
    losses = [m.loss for m in first]
    assert losses == [m.loss for m in again]
    assert losses == pytest.approx([m.loss for m in padded], rel=1e-4)
    assert losses == pytest.approx([m.loss for m in buckets], rel=1e-4)
    assert losses == pytest.approx([m.loss for m in micro], rel=1e-4)
    assert len(losses) == 16 and first[-1].valid_loss is not None and first[7].valid_loss is not None


def test_a_restored_state_continues_on_the_same_curve(setup):
    model, _, examples = setup
    full, curve = _train(model, examples)
    settings = full.settings
    trainer = Trainer(copy.deepcopy(model), examples, examples[:8], settings, torch.device("cpu"))
    seen = []
    stop_after = 5
    trainer.run(
        on_metric=seen.append, should_stop=lambda: len(seen) >= stop_after, on_checkpoint=lambda: None, on_event=print
    )
    state = copy.deepcopy(trainer.state())
    resumed = Trainer(copy.deepcopy(model), examples, examples[:8], settings, torch.device("cpu"))
    resumed.load_state(state)
    rest = []
    resumed.run(on_metric=rest.append, should_stop=lambda: False, on_checkpoint=lambda: None, on_event=print)
    assert [m.step for m in seen + rest] == list(range(1, 17))
    assert [m.loss for m in seen + rest] == pytest.approx([m.loss for m in curve], rel=1e-6)


def test_cosine_and_linear_schedules_warm_up_then_decay(setup):
    model, _, examples = setup
    for kind in ("cosine", "linear"):
        _, metrics = _train(model, examples, schedule=kind, warmup_ratio=0.25)
        rates = [m.learning_rate for m in metrics]
        assert rates[0] < rates[1] and rates[-1] < rates[2] / 5, (kind, rates)


def test_a_step_can_be_a_number_of_tokens_instead_of_examples(setup):
    model, _, examples = setup
    trainer, metrics = _train(model, examples, step_tokens=600, epochs=1)
    steps = trainer.plan[0]
    sizes = [sum(len(examples[i].input_ids) for i in step) for step in steps]
    assert all(size <= 600 for size in sizes[:-1]) and all(size + 60 > 600 for size in sizes[:-1])
    assert sorted(i for step in steps for i in step) == list(range(len(examples)))
    assert len(metrics) == len(steps) == trainer.total_steps


def test_frozen_weights_multiplied_in_bf16_train_the_same_curve_and_leave_the_model_as_loaded(setup):
    """precision.py: LoRA over a frozen base whose products run in bf16 follows the fp32 curve; the fp32
    weights are untouched, so what is saved and merged is the model as loaded."""
    from peft import LoraConfig, get_peft_model

    model, _, examples = setup
    torch.manual_seed(2)
    lora = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    )
    _, fp32_metrics = _train(lora, examples)
    bf16, bf16_metrics = _train(lora, examples, frozen_bf16=True)
    fp32_losses, bf16_losses = [m.loss for m in fp32_metrics], [m.loss for m in bf16_metrics]
    assert bf16_losses != fp32_losses  # the products did run in bf16 ...
    assert bf16_losses == pytest.approx(fp32_losses, rel=2e-3)  # ... and the curve is the same
    assert bf16_metrics[-1].valid_loss == pytest.approx(fp32_metrics[-1].valid_loss, rel=2e-3)
    frozen = {n: p for n, p in bf16.model.named_parameters() if not p.requires_grad}
    assert frozen and all(p.dtype == torch.float32 for p in frozen.values())
    for name, weight in lora.named_parameters():
        if name in frozen:
            assert torch.equal(weight, frozen[name]), name
    assert not any("forward" in vars(m) for m in bf16.model.modules())  # plain fp32 layers again


def test_the_worker_picks_attention_and_precision_per_device():
    """On CPU: attention per example, and bf16 products where the CPU has them, never for FSDP or on a GPU."""
    from fto.backends.local import LocalOptions
    from fto.backends.local.precision import cpu_multiplies_bf16
    from fto.backends.local.worker import attention_implementation, frozen_bf16

    assert attention_implementation("varlen") == "fto_varlen" and attention_implementation("sdpa") == "sdpa"
    if not torch.cuda.is_available():
        assert attention_implementation("auto") == "fto_varlen"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert frozen_bf16(LocalOptions(), cpu) == cpu_multiplies_bf16()
    assert frozen_bf16(LocalOptions(frozen_precision="bfloat16"), cpu)
    assert not frozen_bf16(LocalOptions(frozen_precision="float32"), cpu)
    assert not frozen_bf16(LocalOptions(frozen_precision="bfloat16", processes=2, shard=True), cpu)
    assert not frozen_bf16(LocalOptions(frozen_precision="bfloat16"), cuda)
