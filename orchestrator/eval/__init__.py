"""The evaluation harness: the same examples and scorers on every model, into one comparison report."""
