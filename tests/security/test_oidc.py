"""统一身份认证 over OpenID Connect, against a real issuer over HTTP (tests/security/oidc_issuer.py): its
ID tokens sign people in as their registry person, on both engines."""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.api.app import create_app
from citybase.api.identity import registry_account
from citybase.bus.memory import InProcessBus
from citybase.core.ids import id_check_char, org_code_check_char, uscc_check_char
from citybase.core.settings import InvalidSettings, read_settings
from citybase.demo.services import load_services_demo
from citybase.registry import service as registry
from citybase.registry.models import Person
from citybase.security.models import User
from citybase.security.oidc import OidcSignIn
from citybase.security.settings import OidcSettings
from tests.security.oidc_issuer import API_AUDIENCE, CLIENT_ID, RunningIssuer, new_key


@pytest.fixture(scope="module")
def idp() -> Iterator[RunningIssuer]:
    running = RunningIssuer(("RS256", "ES256"))
    yield running
    running.stop()


def oidc_settings(url: str, **more: object) -> OidcSettings:
    return OidcSettings(issuer=url, audience=CLIENT_ID, firm_claim="uscc", jwks_refresh_cooldown=0, **more)


@pytest.fixture(scope="module")
def api(city, idp) -> TestClient:
    """An app on the demo city with OIDC turned on against the test issuer."""
    app = create_app(engine=city.engine, bus=InProcessBus())
    app.state.oidc = OidcSignIn(oidc_settings(idp.issuer.url), registry_account)
    return TestClient(app, headers={"Accept-Language": "en"})


def _unused_id_number(session: Session, rng: random.Random) -> str:
    area = session.scalar(select(Person.id_number).limit(1))[:6]  # an area code the city's people have
    while True:
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(14000))
        first17 = f"{area}{born:%Y%m%d}{rng.randrange(1000):03d}"
        idn = first17 + id_check_char(first17)
        if session.scalar(select(Person.id).where(Person.id_number == idn)) is None:
            return idn


def new_person(city) -> tuple[int, str]:
    """A person registered for this test only (so no other test's account is theirs): (id, ID number)."""
    rng = random.Random(secrets.randbits(64))
    with Session(city.engine) as session:
        idn = _unused_id_number(session, rng)
        person = registry.create_person(session=session, id_number=idn, name="统一认证测试", phone=None,
                                        household_no="H-OIDC")
        session.commit()
        return person.id, idn


def new_firm(city, rep_id_number: str) -> tuple[int, str]:
    org = f"{secrets.randbelow(10**8):08d}"
    first17 = "91110000" + org + org_code_check_char(org)
    uscc = first17 + uscc_check_char(first17)
    with Session(city.engine) as session:
        firm = registry.create_entity(session=session, uscc=uscc, name="统一认证测试有限公司", entity_type="enterprise",
                                      industry_code="I65", industry="软件和信息技术服务业", legal_rep_name="统一认证测试",
                                      legal_rep_id_number=rep_id_number, registered_capital=100.0,
                                      established_on=date(2020, 5, 1))
        session.commit()
        return firm.id, firm.uscc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def accounts_of(city, person_id: int) -> list[User]:
    with Session(city.engine) as session:
        return list(session.scalars(select(User).where(User.person_id == person_id)))


def audit(api, city, action: str) -> list[dict]:
    r = api.get("/api/v1/audit", params={"action": action, "limit": 1000}, headers=city.auth("admin"))
    assert r.status_code == 200, r.text
    return r.json()


def test_a_valid_token_signs_in_as_the_registry_person_and_makes_the_account_once(api, city, idp):
    person_id, idn = new_person(city)
    token = idp.issuer.mint({"id_number": idn, "sub": f"p-{person_id}"})
    r = api.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["person_id"] == person_id and me["roles"] == ["citizen"] and me["legal_entity_id"] is None
    created = [e for e in audit(api, city, "oidc.account_created") if e["subject_ids"] == str(me["id"])]
    assert len(created) == 1 and created[0]["actor"] == f"user:{me['id']}:{me['username']}"
    # the same token again, and a new token of the same person: the same account, no second one
    assert api.get("/api/v1/me", headers=bearer(token)).json()["id"] == me["id"]
    token2 = idp.issuer.mint({"id_number": idn, "sub": f"p-{person_id}"}, key=idp.issuer.keys[1])  # ES256
    r = api.get("/api/v1/me", headers=bearer(token2))
    assert r.status_code == 200 and r.json()["id"] == me["id"]
    assert [u.id for u in accounts_of(city, person_id)] == [me["id"]]
    signed_in = [e for e in audit(api, city, "oidc.sign_in") if e["subject_ids"] == str(me["id"])]
    assert len(signed_in) == 1  # token2's first use; the first token's sign-in is the account_created entry


def test_an_id_number_in_lower_case_x_is_the_same_person(api, city, idp):
    person_id, idn = new_person(city)
    r = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": idn.lower()})))
    assert r.status_code == 200 and r.json()["person_id"] == person_id


@pytest.mark.parametrize("case, claims, why", [
    ("wrong audience", {"aud": "someone-else"}, "not meant for this platform"),
    ("wrong issuer", {"iss": "https://idp.example.invalid"}, "not issued by"),
    ("expired", {"exp": 1_000_000_000, "iat": 999_999_000}, "expired"),
    ("not yet valid", {"nbf": 4_000_000_000}, "not valid yet"),
    ("no exp", {"exp": None}, "not valid"),
    ("bad ID number", {"id_number": "110101199001010010"}, "no valid ID number"),
    ("no ID number", {"id_number": None}, "no valid ID number"),
])
def test_a_token_that_does_not_hold_is_refused(api, city, idp, case, claims, why):
    _, idn = new_person(city)
    token = idp.issuer.mint({"id_number": idn, **claims})
    r = api.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401, (case, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert why in r.json()["detail"] and r.json()["fix"]


@pytest.fixture(scope="module")
def api_with_access_tokens(city, idp) -> TestClient:
    """OIDC on with CITYBASE_OIDC_API_AUDIENCE set: the issuer's JWT access tokens are accepted too."""
    app = create_app(engine=city.engine, bus=InProcessBus())
    app.state.oidc = OidcSignIn(oidc_settings(idp.issuer.url, api_audience=API_AUDIENCE), registry_account)
    return TestClient(app, headers={"Accept-Language": "en"})


def test_an_access_token_signs_in_with_the_id_number_from_userinfo(api_with_access_tokens, city, idp):
    person_id, idn = new_person(city)
    sub = f"at-{person_id}"
    token = idp.issuer.access_token({"sub": sub}, userinfo={"sub": sub, "id_number": idn, "name": "统一认证测试"})
    calls = idp.issuer.userinfo_calls
    r = api_with_access_tokens.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["person_id"] == person_id and r.json()["roles"] == ["citizen"]
    assert idp.issuer.userinfo_calls == calls + 1
    # the same token again: the same account, and the issuer is not asked again before the token expires
    r2 = api_with_access_tokens.get("/api/v1/services/applications", headers=bearer(token))
    assert r2.status_code == 200, r2.text
    assert idp.issuer.userinfo_calls == calls + 1
    assert [u.id for u in accounts_of(city, person_id)] == [r.json()["id"]]


def test_an_access_token_with_the_id_number_in_it_needs_no_userinfo(api_with_access_tokens, city, idp):
    person_id, idn = new_person(city)
    calls = idp.issuer.userinfo_calls
    r = api_with_access_tokens.get("/api/v1/me", headers=bearer(idp.issuer.access_token({"id_number": idn})))
    assert r.status_code == 200 and r.json()["person_id"] == person_id
    assert idp.issuer.userinfo_calls == calls


def test_access_tokens_that_do_not_hold_are_refused(api, api_with_access_tokens, city, idp):
    person_id, idn = new_person(city)
    # another subject's answer at userinfo: refused, never signed in as that ID number
    swapped = idp.issuer.access_token({"sub": "at-a"}, userinfo={"sub": "at-b", "id_number": idn})
    r = api_with_access_tokens.get("/api/v1/me", headers=bearer(swapped))
    assert r.status_code == 401 and "another subject" in r.json()["detail"], r.text
    # the issuer does not know the token at userinfo (revoked)
    unknown = idp.issuer.access_token({"sub": "at-c"})
    r = api_with_access_tokens.get("/api/v1/me", headers=bearer(unknown))
    assert r.status_code == 401 and "userinfo endpoint (HTTP 401)" in r.json()["detail"], r.text
    # in Chinese too
    r = api_with_access_tokens.get("/api/v1/me", headers={**bearer(unknown), "Accept-Language": "zh"})
    assert r.status_code == 401 and "用户信息端点拒绝" in r.json()["detail"]
    # an access token where the API audience is not configured: not meant for this platform
    token = idp.issuer.access_token({"sub": f"at-{person_id}"}, userinfo={"sub": f"at-{person_id}", "id_number": idn})
    r = api.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401 and "not meant for this platform" in r.json()["detail"]
    assert accounts_of(city, person_id) == []


def test_a_bad_signature_is_refused(api, city, idp):
    _, idn = new_person(city)
    forged = idp.issuer.mint({"id_number": idn}, key=new_key("RS256"), kid=idp.issuer.keys[0].kid)
    r = api.get("/api/v1/me", headers=bearer(forged))
    assert r.status_code == 401 and "signature does not verify" in r.json()["detail"]
    good = idp.issuer.mint({"id_number": idn})
    head, body, sig = good.split(".")
    other = idp.issuer.mint({"id_number": idn, "sub": "someone-else"}).split(".")[1]
    r = api.get("/api/v1/me", headers=bearer(f"{head}.{other}.{sig}"))  # a payload swapped under a signature
    assert r.status_code == 401 and "signature does not verify" in r.json()["detail"]


def test_an_unknown_kid_fetches_the_jwks_again_and_a_rotated_key_signs_in(api, city, idp):
    person_id, idn = new_person(city)
    assert api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": idn}))).status_code == 200
    fetches = idp.issuer.jwks_fetches
    rotated = new_key("ES256")
    idp.issuer.keys.append(rotated)  # the issuer rotates: a new key, published from now on
    r = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": idn}, key=rotated)))
    assert r.status_code == 200 and r.json()["person_id"] == person_id
    assert idp.issuer.jwks_fetches == fetches + 1
    # the known key is served from the cache: no fetch
    assert api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": idn}, key=rotated))).status_code == 200
    assert idp.issuer.jwks_fetches == fetches + 1
    # a kid the issuer never published: one more fetch, then refused
    stray = idp.issuer.mint({"id_number": idn}, key=new_key("RS256"))
    r = api.get("/api/v1/me", headers=bearer(stray))
    assert r.status_code == 401 and "does not publish" in r.json()["detail"]
    assert idp.issuer.jwks_fetches == fetches + 2


def test_a_person_not_in_the_registry_is_refused_and_audited(api, city, idp):
    with Session(city.engine) as session:
        idn = _unused_id_number(session, random.Random(secrets.randbits(64)))
    subject = f"stranger-{secrets.token_hex(4)}"
    r = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": idn, "sub": subject})))
    assert r.status_code == 401
    assert "not in the city's population registry" in r.json()["detail"]
    r = api.get("/api/v1/me", headers={**bearer(idp.issuer.mint({"id_number": idn, "sub": subject})),
                                       "Accept-Language": "zh"})
    assert r.status_code == 401 and "自然人库" in r.json()["detail"]
    refused = [e for e in audit(api, city, "oidc.sign_in_refused") if e["subject_ids"] == subject]
    assert len(refused) == 2 and idn not in str(refused)  # the ID number itself is not in the log


def test_the_citizen_sees_only_their_own_applications(api, city, idp, tmp_path):
    load_services_demo(city.engine, tmp_path)  # the shipped catalogue (loading again adds nothing)
    _, idn = new_person(city)
    me = bearer(idp.issuer.mint({"id_number": idn}))
    r = api.get("/api/v1/services/applications", headers=me)
    assert r.status_code == 200 and r.json()["total"] == 0

    def start(headers: dict[str, str]) -> int:
        items = api.get("/api/v1/services/items", params={"page_size": 100}, headers=headers).json()["items"]
        for item in items:
            r = api.post("/api/v1/services/applications", json={"item": item["code"]}, headers=headers)
            if r.status_code == 201:
                return r.json()["id"]
        raise AssertionError("no item a person may apply for")

    theirs = start(city.auth("citizen"))  # the demo citizen's draft
    mine = start(me)
    listed = api.get("/api/v1/services/applications", headers=me).json()
    assert [a["id"] for a in listed["items"]] == [mine]
    assert api.get(f"/api/v1/services/applications/{theirs}", headers=me).status_code in (403, 404)
    assert api.get(f"/api/v1/services/applications/{mine}", headers=me).status_code == 200
    demo = api.get("/api/v1/services/applications", headers=city.auth("citizen")).json()
    assert theirs in [a["id"] for a in demo["items"]] and mine not in [a["id"] for a in demo["items"]]


def test_a_legal_representative_signs_in_for_the_firm(api, city, idp):
    rep_id, rep_idn = new_person(city)
    firm_id, uscc = new_firm(city, rep_idn)
    r = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": rep_idn, "uscc": uscc})))
    assert r.status_code == 200, r.text
    firm_account = r.json()
    assert firm_account["legal_entity_id"] == firm_id and firm_account["person_id"] is None
    again = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": rep_idn, "uscc": uscc})))
    assert again.json()["id"] == firm_account["id"]
    # someone else may not sign in for the firm
    _, other_idn = new_person(city)
    r = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": other_idn, "uscc": uscc})))
    assert r.status_code == 401 and "legal representative" in r.json()["detail"]
    # the representative signing in as themselves: their own citizen account, apart from the firm's
    r = api.get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": rep_idn})))
    assert r.status_code == 200 and r.json()["person_id"] == rep_id and r.json()["legal_entity_id"] is None
    assert r.json()["id"] != firm_account["id"]
    signed_in = [e for e in audit(api, city, "oidc.account_created") if e["subject_ids"] == str(firm_account["id"])]
    assert len(signed_in) == 1 and signed_in[0]["fields"] == "id_number,uscc"


def test_citybase_tokens_still_work_when_oidc_is_on(api, city):
    r = api.get("/api/v1/me", headers=city.auth("citizen"))
    assert r.status_code == 200 and r.json()["username"] == "citizen"
    assert api.get("/api/v1/me", headers=bearer("cb_not-a-token")).status_code == 401
    r = api.get("/api/v1/me", headers=bearer("not.a.jwt"))
    assert r.status_code == 401 and r.json()["detail"] == "the bearer token is not known"


def test_the_page_learns_the_endpoints(api, client, idp):
    r = api.get("/api/v1/auth/oidc")
    assert r.status_code == 200
    assert r.json() == {"enabled": True, "issuer": idp.issuer.url, "client_id": CLIENT_ID,
                        "authorization_endpoint": idp.issuer.url + "/authorize",
                        "token_endpoint": idp.issuer.url + "/token", "scope": "openid profile"}
    assert client.get("/api/v1/auth/oidc").json()["enabled"] is False  # the app without CITYBASE_OIDC_ISSUER
    r = client.post("/api/v1/auth/oidc/token", json={"code": "x", "code_verifier": "v" * 43,
                                                      "redirect_uri": "http://127.0.0.1/login"})
    assert r.status_code == 404


def _authorize(idp, verifier: str, redirect_uri: str) -> str:
    """Go through the issuer's authorization endpoint as a browser would; the code it redirects with."""
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    q = urlencode({"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri, "state": "s1",
                   "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256", "nonce": "n1"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{idp.issuer.url}/authorize?{q}", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302
        return parse_qs(urlsplit(exc.headers["Location"]).query)["code"][0]
    raise AssertionError("the issuer did not redirect")


def test_the_code_is_exchanged_with_its_pkce_verifier(api, city, idp):
    person_id, idn = new_person(city)
    idp.issuer.login_as = {"id_number": idn, "sub": f"p-{person_id}"}
    redirect = "http://testserver/login"
    verifier = secrets.token_urlsafe(48)
    code = _authorize(idp, verifier, redirect)
    r = api.post("/api/v1/auth/oidc/token", json={"code": code, "code_verifier": verifier, "redirect_uri": redirect,
                                                  "nonce": "n1"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert api.get("/api/v1/me", headers=bearer(token)).json()["person_id"] == person_id
    # a wrong verifier: the issuer refuses the code
    code = _authorize(idp, verifier, redirect)
    r = api.post("/api/v1/auth/oidc/token", json={"code": code, "code_verifier": "w" * 43, "redirect_uri": redirect})
    assert r.status_code == 401 and "refused the sign-in code" in r.json()["detail"]
    # a token that is not the answer to this page's request (another nonce)
    code = _authorize(idp, verifier, redirect)
    r = api.post("/api/v1/auth/oidc/token", json={"code": code, "code_verifier": verifier, "redirect_uri": redirect,
                                                  "nonce": "another"})
    assert r.status_code == 401 and "nonce" in r.json()["detail"]


def test_the_settings_are_checked(monkeypatch, city, idp):
    with pytest.raises(InvalidSettings) as exc:
        read_settings(OidcSettings, issuer="https://idp.example.invalid")
    assert "CITYBASE_OIDC_AUDIENCE" in str(exc.value)
    with pytest.raises(InvalidSettings) as exc:
        read_settings(OidcSettings, issuer="not a url")
    assert "CITYBASE_OIDC_ISSUER" in str(exc.value)
    assert read_settings(OidcSettings).enabled is False
    # the deployment's way: variables read by the composition root
    monkeypatch.setenv("CITYBASE_OIDC_ISSUER", idp.issuer.url)
    monkeypatch.setenv("CITYBASE_OIDC_AUDIENCE", CLIENT_ID)
    app = create_app(engine=city.engine, bus=InProcessBus())
    assert app.state.oidc is not None and app.state.oidc.settings.id_claim == "id_number"
    _, idn = new_person(city)
    r = TestClient(app).get("/api/v1/me", headers=bearer(idp.issuer.mint({"id_number": idn})))
    assert r.status_code == 200


def test_two_first_sign_ins_at_once_make_one_account(api, city, idp):
    person_id, idn = new_person(city)
    tokens = [idp.issuer.mint({"id_number": idn, "sub": f"race-{i}"}) for i in range(4)]
    state = api.app.state
    barrier = threading.Barrier(len(tokens))
    results: list[int | BaseException] = []

    def sign_in(token: str) -> None:
        barrier.wait()
        try:
            p = state.oidc.sign_in(engine=state.engine, sessions=state.sessions, token=token, request_id="race")
            results.append(p.user_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=sign_in, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accounts = accounts_of(city, person_id)
    assert len(accounts) == 1 and results == [accounts[0].id] * len(tokens)
