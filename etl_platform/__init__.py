"""The ETL platform: an engine that knows nothing of Dagster, and the Dagster-facing code around it.

Imports point one way (the contracts under [tool.importlinter] in pyproject.toml hold it, and
`make test` checks them): the engine (every subpackage and module here except `cli`,
`definitions` and `instance`) <- the Dagster layer (the top-level `assets`, `resources` and
`sensors`, and `instance`, which reads the Dagster instance) <- the composition root
(`definitions`) and the CLI.
"""
