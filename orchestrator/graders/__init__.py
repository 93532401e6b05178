"""Graders at run time: render their templates, compute their values (text checks, similarity, models, sandboxed
Python, formulas over other graders), and report per-sample errors instead of failing the whole run."""
