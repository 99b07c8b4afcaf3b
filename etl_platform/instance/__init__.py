"""The Dagster layer's reader of the Dagster instance: catalog, column lineage, metadata values.

What the engine did is recorded as Dagster materializations and check evaluations; these modules
read it back for the CLI. They import Dagster, so they sit above the engine (which never does) and
below the CLI and composition root; the import contracts in pyproject.toml hold that order.
"""
