"""The CITYBASE_* variables: defaults that need no server, overrides, and a clear sentence for a wrong value."""

from pathlib import Path

import pytest

from citybase.core.settings import InvalidSettings, load_settings
from citybase.kernel.settings import check_settings, domain_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("CITYBASE_") and not n.startswith("CITYBASE_TEST")]:
        monkeypatch.delenv(name)
    domain_settings.cache_clear()
    yield monkeypatch
    domain_settings.cache_clear()


def test_the_defaults_are_embedded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.data_dir == tmp_path.resolve() / "data"
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'citybase.sqlite3'}"
    assert (s.bus_url, s.host, s.port, s.workers, s.threads) == ("memory://", "127.0.0.1", 8000, True, 0)
    assert (s.log_format, s.log_level, s.is_postgres) == ("text", "INFO", False)


def test_variables_are_read_and_empty_ones_mean_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CITYBASE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBASE_DATABASE_URL", "")
    monkeypatch.setenv("CITYBASE_PORT", "9001")
    monkeypatch.setenv("CITYBASE_WORKERS", "0")
    monkeypatch.setenv("CITYBASE_LOG_LEVEL", "debug")
    s = load_settings()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'citybase.sqlite3'}"
    assert (s.port, s.workers, s.log_level) == (9001, False, "DEBUG")
    monkeypatch.setenv("CITYBASE_DATABASE_URL", "postgresql+psycopg://u@h:5432/db")
    assert load_settings().is_postgres


def test_keyword_overrides_win_and_none_means_not_given(monkeypatch, tmp_path):
    monkeypatch.setenv("CITYBASE_PORT", "9001")
    s = load_settings(port=7000, data_dir=tmp_path, host=None)
    assert (s.port, s.host, s.data_dir) == (7000, "127.0.0.1", Path(tmp_path).resolve())


def test_settings_are_frozen():
    with pytest.raises(Exception, match="frozen"):
        load_settings().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("name", "value", "sentence"), [
    ("CITYBASE_PORT", "abc", "CITYBASE_PORT must be an integer port 1–65535, got 'abc'"),
    ("CITYBASE_PORT", "70000", "CITYBASE_PORT must be an integer port 1–65535, got '70000'"),
    ("CITYBASE_WORKERS", "maybe", "CITYBASE_WORKERS must be 1 or 0 (true/false, yes/no), got 'maybe'"),
    ("CITYBASE_DATABASE_URL", "mysql://x/y", "CITYBASE_DATABASE_URL must be sqlite:///path or postgresql+psycopg://"),
    ("CITYBASE_BUS_URL", "kafka://k", "CITYBASE_BUS_URL must be memory:// or nats://host:port, got 'kafka://k'"),
    ("CITYBASE_LOG_FORMAT", "xml", "CITYBASE_LOG_FORMAT must be text or json, got 'xml'"),
])
def test_a_wrong_value_is_named_with_what_it_must_be(monkeypatch, name, value, sentence):
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings) as caught:
        load_settings()
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(sentence)


def test_a_domain_has_its_own_validated_settings(monkeypatch):
    assert domain_settings("ops").auto_dispatch_confidence == 0.85
    domain_settings.cache_clear()
    monkeypatch.setenv("CITYBASE_OPS_SUPERVISION_INTERVAL", "15")
    assert domain_settings("ops").supervision_interval == 15.0
    with pytest.raises(KeyError):
        domain_settings("geo")


def test_the_start_check_lists_every_wrong_variable_of_the_platform_and_the_domains(monkeypatch):
    monkeypatch.setenv("CITYBASE_THREADS", "-1")
    monkeypatch.setenv("CITYBASE_OPS_AUTO_DISPATCH_CONFIDENCE", "1.5")
    with pytest.raises(InvalidSettings) as caught:
        check_settings()
    assert [p.split(" must")[0] for p in caught.value.problems] == ["CITYBASE_THREADS",
                                                                     "CITYBASE_OPS_AUTO_DISPATCH_CONFIDENCE"]
