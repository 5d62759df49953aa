"""citybase — an open-source digital foundation for cities."""

__version__ = "0.1.0"
