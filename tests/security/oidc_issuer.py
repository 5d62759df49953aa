"""A small OpenID Connect issuer for the tests: a real HTTP server on 127.0.0.1 with discovery, JWKS, an
authorization endpoint (it signs in whoever ``login_as`` names, at once) and a token endpoint that checks
PKCE. Its JWTs are signed here with ``cryptography`` (RS256 and ES256), not with the library citybase
verifies them with."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

CLIENT_ID = "citybase-test"
API_AUDIENCE = "https://citybase.test/api"  # the audience of its JWT access tokens (RFC 9068)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(n: int, size: int | None = None) -> str:
    return b64(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, str]:
        pub = self.private.public_key().public_numbers()
        if self.alg == "RS256":
            return {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig", "n": _int(pub.n), "e": _int(pub.e)}
        return {"kty": "EC", "kid": self.kid, "alg": "ES256", "use": "sig", "crv": "P-256",
                "x": _int(pub.x, 32), "y": _int(pub.y, 32)}

    def sign(self, data: bytes) -> bytes:
        if self.alg == "RS256":
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def new_key(alg: str = "RS256") -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS256" \
        else ec.generate_private_key(ec.SECP256R1())
    return Key(kid=f"{alg.lower()}-{secrets.token_hex(4)}", alg=alg, private=private)


@dataclass
class Issuer:
    """The test issuer; ``url`` is its issuer identifier (and base URL)."""

    url: str = ""
    keys: list[Key] = field(default_factory=list)  # published in the JWKS
    jwks_fetches: int = 0
    login_as: dict[str, Any] = field(default_factory=dict)  # the claims of whoever /authorize signs in
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    userinfo: dict[str, dict[str, Any]] = field(default_factory=dict)  # access token -> what /userinfo answers
    userinfo_calls: int = 0

    def mint(self, claims: dict[str, Any] | None = None, *, key: Key | None = None, kid: str | None = None,
             lifetime: int = 600, typ: str = "JWT") -> str:
        """A signed JWT with sensible claims (iss, aud, sub, iat, exp), overridden by ``claims``."""
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": self.url, "aud": CLIENT_ID, "sub": "subject-1", "iat": now, "exp": now + lifetime}
        body.update(claims or {})
        body = {k: v for k, v in body.items() if v is not None}
        header = {"alg": key.alg, "typ": typ, "kid": kid or key.kid}
        signing_input = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())).encode()
        return signing_input.decode() + "." + b64(key.sign(signing_input))

    def access_token(self, claims: dict[str, Any], *, userinfo: dict[str, Any] | None = None) -> str:
        """A JWT access token for the API (RFC 9068: typ at+jwt, aud the API), without the ID number claim
        unless ``claims`` has it; ``userinfo`` is what /userinfo then answers for it."""
        token = self.mint({"aud": API_AUDIENCE, "client_id": CLIENT_ID, "scope": "openid", **claims}, typ="at+jwt")
        if userinfo is not None:
            self.userinfo[token] = userinfo
        return token

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks", "authorization_endpoint": self.url + "/authorize",
                "token_endpoint": self.url + "/token", "userinfo_endpoint": self.url + "/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "code_challenge_methods_supported": ["S256"]}


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                return self._json(200, issuer.discovery())
            if url.path == "/jwks":
                issuer.jwks_fetches += 1
                return self._json(200, {"keys": [k.jwk() for k in issuer.keys]})
            if url.path == "/userinfo":
                issuer.userinfo_calls += 1
                auth = self.headers.get("Authorization") or ""
                info = issuer.userinfo.get(auth.removeprefix("Bearer "))
                return self._json(200, info) if info is not None else self._json(401, {"error": "invalid_token"})
            if url.path == "/authorize":
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" \
                        or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                    return self._json(400, {"error": "invalid_request"})
                code = secrets.token_urlsafe(16)
                issuer.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                                      "nonce": q.get("nonce"), "claims": dict(issuer.login_as)}
                self.send_response(302)
                self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))
                self.end_headers()
                return None
            return self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/token":
                return self._json(404, {"error": "not_found"})
            n = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
            issuer.token_requests.append(form)
            grant = issuer.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = b64(hashlib.sha256(verifier.encode()).digest())
            if grant is None or form.get("grant_type") != "authorization_code" or challenge != grant["challenge"] \
                    or form.get("redirect_uri") != grant["redirect_uri"] or form.get("client_id") != CLIENT_ID:
                return self._json(400, {"error": "invalid_grant"})
            token = issuer.mint({**grant["claims"], "nonce": grant["nonce"]})
            return self._json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                    "expires_in": 600, "id_token": token})

    return Handler


class RunningIssuer:
    """Start the issuer on a free 127.0.0.1 port; ``stop()`` shuts it down."""

    def __init__(self, algs: tuple[str, ...] = ("RS256",)) -> None:
        self.issuer = Issuer(keys=[new_key(a) for a in algs])
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.issuer))
        self.issuer.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
