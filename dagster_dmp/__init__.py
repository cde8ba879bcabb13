"""Dagster wiring of the DMP: the only package that knows about Dagster."""
