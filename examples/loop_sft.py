"""Your own SFT loop with fto.loop: the same script trains in this process on the local trainer, or on any
Tinker-compatible service (`fto serve`, Tinker, Together's post-training sessions) when given its URL.

    python examples/loop_sft.py                                   # local trainer, in process
    python examples/loop_sft.py --url http://127.0.0.1:8000       # fto serve's Tinker API
    TINKER_API_KEY=tml-… python examples/loop_sft.py --url https://… --model meta-llama/Llama-3.2-1B
"""

from __future__ import annotations

import argparse
import json
import os
import random
import uuid
from pathlib import Path

from fto import loop

DATA = Path(__file__).parent / "data" / "animals.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Tinker-compatible service (default: the local trainer, in process)")
    parser.add_argument("--model", default="embedded:tiny-llama")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    args = parser.parse_args()

    trainer = loop.connect(args.model, args.url, rank=16, seed=0, api_key=os.environ.get("TINKER_API_KEY"))
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    data = [loop.chat_datum(trainer.tokenizer, row["messages"]) for row in rows]
    random.Random(0).shuffle(data)
    for step in range(args.steps):
        first = step * args.batch % len(data)
        result = loop.sft_step(trainer, data[first : first + args.batch], args.learning_rate)
        print(json.dumps({"step": step + 1, "loss": round(result.loss, 4)}), flush=True)

    question = rows[0]["messages"][:-1]  # the system and user turns; the model answers
    prompt = trainer.tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    ids = trainer.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    [answer] = trainer.sample(ids, 1, loop.SamplingParams(max_tokens=12, temperature=0.0))
    print(json.dumps({"question": question[-1]["content"],
                      "answer": trainer.tokenizer.decode(answer.tokens, skip_special_tokens=True)}))  # fmt: skip
    print(json.dumps({"saved": trainer.save_state(f"loop-sft-{uuid.uuid4().hex[:8]}")}))


if __name__ == "__main__":
    main()
