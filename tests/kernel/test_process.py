"""Every citybase process caps glibc's malloc arenas at start, unless the operator chose a number."""

import subprocess
import sys

from citybase.kernel import process


def _in_new_process(code: str, env: dict[str, str] | None = None) -> str:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def test_the_arenas_are_capped_on_glibc():
    code = "from citybase.kernel.process import limit_malloc_arenas as f; print(f())"
    assert _in_new_process(code, {"MALLOC_ARENA_MAX": ""}) == "True"  # Linux/glibc, as deployed


def test_an_operators_malloc_arena_max_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert process.limit_malloc_arenas() is False



def test_one_heap_trimmer_runs_per_process():
    import threading

    assert process.start_heap_trimmer(interval=3600) is True
    assert process.start_heap_trimmer(interval=3600) is True  # the second call finds it running
    assert [t.name for t in threading.enumerate()].count("citybase-heap-trim") == 1

