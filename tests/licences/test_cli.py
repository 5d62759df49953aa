"""`citybase licences keys` and `citybase licences verify` offline (the online check is in tests/web, against a
served city)."""

import json

from typer.testing import CliRunner

from citybase.cli import app
from citybase.licences import signing


def test_the_published_keys_verify_a_token_offline_and_a_forgery_fails(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["licences", "keys"])
    assert out.exit_code == 0, out.output
    keys = tmp_path / "keys.json"
    keys.write_text(out.output)
    kid = json.loads(out.output)[0]["kid"]
    token = signing.load_keys().sign({"v": 1, "id": "1.2.156.3005.2.TEST", "tn": "居民身份证", "h": "张三"})
    good = tmp_path / "t.txt"
    good.write_text(token)
    ok = runner.invoke(app, ["licences", "verify", str(good), "--keys", str(keys)])
    assert ok.exit_code == 0 and kid in ok.output and "张三" in ok.output, ok.output
    head, sig = token.rsplit(".", 1)
    good.write_text(head + "." + ("A" if sig[0] != "A" else "B") + sig[1:])
    bad = runner.invoke(app, ["licences", "verify", str(good), "--keys", str(keys)])
    assert bad.exit_code == 1 and "bad_signature" in bad.output


def test_input_without_a_token_is_refused(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("not a licence")
    r = CliRunner().invoke(app, ["licences", "verify", str(f)])
    assert r.exit_code == 1 and "no licence token" in r.output
