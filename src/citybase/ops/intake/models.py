"""Intake owns no table of its own: a report becomes a workflow ``Incident`` (``ops.workflow.models``)
and its first ``Reporter`` (``ops.notifications.models``); an Open311 client's token is a column of
the incident. This file is where an intake table (e.g. a channel's raw message log) would go."""
