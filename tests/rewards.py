"""examples/rft.yaml's reward, as the RFT tests of every backend use it: the animal's class (a string_check on the
row's reference answer), briefly (a python grader for length), combined by a multi grader."""

ANSWER = {"name": "answer", "type": "string_check", "input": "{{ sample.output_text }}",
          "reference": "{{ item.reference }}", "operation": "ilike"}  # fmt: skip
SHORT = {
    "name": "short",
    "type": "python",
    "source": "def grade(sample, item):\n    return max(0.0, 1.0 - len(sample['output_text']) / 30)\n",
}
MULTI = {"name": "reward", "type": "multi", "calculate_output": "0.5 * short + 0.5 * answer",
         "graders": {"short": SHORT, "answer": ANSWER}}  # fmt: skip
