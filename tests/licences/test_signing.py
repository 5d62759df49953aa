"""Ed25519-signed licence tokens: what verifies, what does not, and where the key lives."""

import json
import stat

import pytest

from citybase.licences import signing

CONTENT = {"v": 1, "id": "1.2.156.3005.2.X", "tn": "居民身份证", "h": "张三", "f": {"address": "徐汇区漕溪北路1号"}}


def keys(seed: str = "11" * 32) -> signing.SigningKeys:
    return signing._keys([seed], "test")


def test_a_signed_token_verifies_and_returns_its_content():
    k = keys()
    token = k.sign(CONTENT)
    checked = signing.verify_token(token, k.public)
    assert checked.ok and checked.content == CONTENT and checked.kid == k.kid


def test_the_payload_is_the_canonical_json_of_the_content():
    token = keys().sign({"b": 1, "a": "汉"})
    assert signing.unb64url(token.split(".")[2]) == '{"a":"汉","b":1}'.encode()


def test_a_changed_payload_or_signature_fails():
    k = keys()
    fmt, kid, payload, sig = k.sign(CONTENT).split(".")
    forged = signing.b64url(signing.canonical({**CONTENT, "h": "李四"}))
    assert signing.verify_token(".".join([fmt, kid, forged, sig]), k.public).reason == "bad_signature"
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert signing.verify_token(".".join([fmt, kid, payload, flipped]), k.public).reason == "bad_signature"


def test_another_key_is_unknown_and_garbage_is_malformed():
    token = keys().sign(CONTENT)
    assert signing.verify_token(token, keys("22" * 32).public).reason == "unknown_key"
    assert signing.verify_token("hello", keys().public).reason == "malformed"


def test_a_token_is_found_in_a_verifier_link_or_a_json_file():
    token = keys().sign(CONTENT)
    assert signing.extract_token(f"https://city.example/licences/verify#{token}") == token
    assert signing.extract_token(json.dumps({"token": token})) == token


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv(signing.ENV_KEY, raising=False)
    signing.load_keys.cache_clear()
    try:
        first = signing.load_keys(tmp_path)
        path = signing.key_file(tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        signing.load_keys.cache_clear()
        assert signing.load_keys(tmp_path).kid == first.kid
    finally:
        signing.load_keys.cache_clear()


def test_the_environment_key_signs_and_older_ones_still_verify(tmp_path, monkeypatch):
    old = keys("33" * 32)
    token = old.sign(CONTENT)
    monkeypatch.setenv(signing.ENV_KEY, "44" * 32 + "," + "33" * 32)
    signing.load_keys.cache_clear()
    try:
        k = signing.load_keys(tmp_path)
        assert k.kid != old.kid and signing.verify_token(token, k.public).ok
        assert not signing.key_file(tmp_path).exists()  # no file made when the environment holds the key
    finally:
        signing.load_keys.cache_clear()


def test_a_key_that_is_not_a_seed_is_refused():
    with pytest.raises(signing.SigningKeyError):
        signing._keys(["abcd"], "test")
