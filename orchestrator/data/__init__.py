"""The data layer: read any common format into canonical records, validate, count, convert, split."""
