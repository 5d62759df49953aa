"""Several processes of one deployment: /metrics on any of them answers for all (multiprocess mode)."""

import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

RECORD = """
from citybase.kernel import metrics
for _ in range({n}):
    metrics.observe_request("POST", "/open311/v2/requests.json", 201, 0.02)
metrics.timer_ran("ops-supervision")
"""
SCRAPE = """
import sys
from citybase.kernel import metrics
metrics.set_outbox_depth(lambda: 5)
sys.stdout.write(metrics.render().decode())
"""


def _run(code, env):
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_counters_of_every_process_are_summed_in_multiprocess_mode(tmp_path):
    from citybase.kernel.metrics import reset_multiprocess_dir

    reset_multiprocess_dir(tmp_path)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _run(RECORD.format(n=3), env)
    _run(RECORD.format(n=4), env)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(_run(SCRAPE, env)) for s in fam.samples}
    route = (("method", "POST"), ("route", "/open311/v2/requests.json"), ("status", "201"))
    assert samples[("citybase_http_requests_total", route)] == 7
    assert samples[("citybase_timer_runs_total", (("outcome", "ok"), ("timer", "ops-supervision")))] == 2
    assert samples[("citybase_outbox_depth", ())] == 5  # read at the scrape, not summed
    reset_multiprocess_dir(tmp_path)
    assert not list(tmp_path.glob("*.db"))
