"""The workflow of an incident: the one table of its states and transitions (``states``), the steps,
deadlines on the State Council calendar (``deadlines``) and supervision (督办)."""
