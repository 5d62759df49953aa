"""Every query of classification: the labelled history it trains on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.states import Status

TRAINING_CHANNELS = ("hotline", "open311", "api", "inspector")  # people's words (IoT alarm texts are generated)


class ClassificationRepository:
    """Reads for training, in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def labelled_history(self) -> list[tuple[str, str]]:
        """(text, category) of every report whose category a person confirmed or corrected."""
        rows = self.session.execute(select(Incident.description, Incident.category_code)
                                    .where(Incident.category_confirmed.is_(True), Incident.status != Status.REJECTED)
                                    .where(Incident.channel.in_(TRAINING_CHANNELS)))
        return [(t, c) for t, c in rows]
