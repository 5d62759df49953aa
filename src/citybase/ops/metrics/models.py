"""Metrics own no table: they are computed from the workflow's incidents (``ops.workflow.models``).
A table of pre-aggregated figures, if one is ever needed, goes here."""
