"""Settings read from the environment (CITYBASE_*), with embedded defaults that need no server.

One pydantic-settings model for the platform here; each domain may declare its own model (its
descriptor's ``settings``), read and validated the same way. A wrong value is refused at start with
the variable's name, what it must be and what it was (:class:`InvalidSettings`), never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class InvalidSettings(ValueError):
    """One or more CITYBASE_* variables are wrong; ``problems`` has one sentence per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    """The platform's settings; every field is the variable ``CITYBASE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CITYBASE_", env_ignore_empty=True, frozen=True, extra="ignore")

    data_dir: Path = Field(Path("data"), description="a folder path (where the SQLite database and tokens live)")
    database_url: str = Field("", pattern=r"^(sqlite:|postgresql)",
                              description="sqlite:///path or postgresql+psycopg://user@host:5432/db")
    bus_url: str = Field("memory://", pattern=r"^(memory:|nats:)", description="memory:// or nats://host:port")
    host: str = Field("127.0.0.1", min_length=1, description="a host name or address to serve on")
    port: int = Field(8000, ge=1, le=65535, description="an integer port 1–65535")
    # background consumers and timers in the serving process
    workers: bool = Field(True, description="1 or 0 (true/false, yes/no)")
    # threads for sync request handlers; 0 chooses by engine
    threads: int = Field(0, ge=0, le=1024, description="a whole number of threads 0–1024 (0 chooses by engine)")
    log_format: Literal["text", "json"] = Field("text", description="text or json")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, values: Any) -> Any:
        # The data folder is made absolute once, and the default database lives in it.
        if isinstance(values, dict):
            values = dict(values)
            if isinstance(values.get("log_level"), str):
                values["log_level"] = values["log_level"].upper()
            data_dir = values.get("data_dir") or "data"
            if isinstance(data_dir, (str, Path)):
                values["data_dir"] = data_dir = Path(data_dir).resolve()
            if not values.get("database_url"):
                values["database_url"] = f"sqlite:///{Path(str(data_dir)) / 'citybase.sqlite3'}"
        return values

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def read_settings(model: type[BaseSettings], **overrides: Any) -> Any:
    """An instance of a settings model from the environment; keyword overrides (unless None) win.

    Raises InvalidSettings naming each wrong variable, what it must be, and the value it had."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return model(**given)
    except ValidationError as exc:
        raise InvalidSettings(_explain(model, exc)) from None


def load_settings(**overrides: object) -> Settings:
    """Read the settings from CITYBASE_* variables; keyword overrides win over the environment."""
    return read_settings(Settings, **overrides)


def _explain(model: type[BaseSettings], exc: ValidationError) -> list[str]:
    prefix = str(model.model_config.get("env_prefix", ""))
    out = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        info = model.model_fields.get(name)
        what = info.description if info is not None and info.description else err["msg"]
        out.append(f"{prefix}{name.upper()} must be {what}, got {err.get('input')!r}")
    return out
