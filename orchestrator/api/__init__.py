"""The Python API's implementation (`import fto` re-exports it): specs, submission, experiments and jobs, results,
data, and the actions on jobs that the CLI and the dashboard share."""
