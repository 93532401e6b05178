"""`fto ui`: a live web dashboard over the one Store — experiments, jobs, loss curves, comparisons and data.

Pages are jinja2 templates (the comparison shares report.html's), charts are uPlot (vendored under static/),
live updates are server-sent events (live.py). The app loads on first use, so `fto --help` stays quick.
"""
