"""Regenerate animals.jsonl: a small classification task a tiny model learns in seconds on a CPU.

Each example names an animal inside a varied sentence; the answer is its class. No sentence repeats, so held-out
examples are new sentences: the model must find the animal among the other words, not recall a whole line.
"""

import json
import random
from pathlib import Path

CLASSES = {
    "bird": "eagle sparrow parrot owl penguin robin pigeon crow swan flamingo heron falcon",
    "mammal": "dog cat horse whale bat lion tiger rabbit elephant dolphin mouse bear",
    "fish": "salmon trout shark tuna cod goldfish carp herring sardine pike eel catfish",
    "reptile": "snake lizard turtle crocodile gecko iguana tortoise alligator cobra python chameleon viper",
    "insect": "ant bee beetle butterfly moth wasp mosquito grasshopper cricket ladybug dragonfly termite",
}
# A sentence is an opening, the animal, what it did, a place and a time: so many combinations that no two
# examples are near-duplicates (`fto data check` passes on the file).
OPENINGS = ["I saw a", "My neighbour spotted a", "There was a", "We found a small", "The children drew a",
            "Someone photographed a", "Grandma described a", "A tourist filmed a", "Our teacher pointed at a",
            "The farmer chased a"]  # fmt: skip
DOINGS = ["resting", "hiding", "running", "eating something", "making noise", "sitting quietly", "moving slowly",
          "looking around", "drinking water", "playing"]  # fmt: skip
PLACES = ["near the river", "in the garden", "behind the barn", "deep in the forest", "by the lake",
          "next to our house", "in the open field", "on the beach", "in the city park", "beside the road"]  # fmt: skip
TIMES = ["this morning", "last night", "yesterday", "at noon", "during the storm", "on Sunday", "at sunset",
         "before breakfast", "last summer", "an hour ago"]  # fmt: skip
QUESTIONS = ["What kind of animal is it?", "Which class does it belong to?", "What class of animal was that?",
             "Name its class.", "Which group of animals is it in?"]  # fmt: skip
EXAMPLES = 500  # the size `fto data check` asks for at least
SYSTEM = "Answer with the animal's class: bird, mammal, fish, reptile or insect."


def main() -> None:
    rng = random.Random(0)
    out = Path(__file__).with_name("animals.jsonl")
    seen: set[str] = set()
    with out.open("w") as f:
        while len(seen) < EXAMPLES:  # no prompt twice: no duplicates, no eval prompt among the training ones
            kind = rng.choice(list(CLASSES))
            animal = rng.choice(CLASSES[kind].split())
            parts = (rng.choice(OPENINGS), animal, rng.choice(DOINGS), rng.choice(PLACES), rng.choice(TIMES))
            prompt = " ".join(parts) + ". " + rng.choice(QUESTIONS)
            setting = " ".join(parts[:1] + parts[2:])  # all but the animal: two that differ in it alone are alike
            if setting in seen:
                continue
            seen.add(setting)
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": kind},
            ]
            f.write(json.dumps({"messages": messages}) + "\n")


if __name__ == "__main__":
    main()
