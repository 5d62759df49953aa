"""统一身份认证 over OpenID Connect: a bearer token that is a JWT from the city's identity provider is
verified here and mapped to a citybase account.

Off unless ``CITYBASE_OIDC_ISSUER`` is set. The issuer's discovery document
(``<issuer>/.well-known/openid-configuration``) names its JWKS; the keys are cached and fetched again when a
token names a key id the cache does not have (key rotation). A token is accepted when its signature verifies
against those keys and its ``iss``, ``aud`` (``CITYBASE_OIDC_AUDIENCE``), ``exp`` and ``nbf`` hold; its
``CITYBASE_OIDC_ID_CLAIM`` must be a GB 11643 ID number with a right check character.

Besides ID tokens, JWT access tokens (RFC 9068) are accepted when ``CITYBASE_OIDC_API_AUDIENCE`` is set and the
token's ``aud`` names it: the same signature and claim checks, and when the access token does not carry the ID
number claim itself (most don't), it is asked of the issuer's userinfo endpoint with that token (OIDC Core 5.3;
the answer's ``sub`` must be the token's), remembered until the token expires. Opaque (non-JWT) access tokens
are not accepted: they would need the issuer's introspection endpoint and a client secret per call.

Security sits below the registry and does not know persons: which account an identity is, is the
*resolver*'s answer, given by the composition root (``citybase.api.identity``), which looks the person up
through the registry's service. Every sign-in is audited (``oidc.sign_in``, once per token per process)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, InvalidIdentifier, Unauthenticated, Unavailable
from citybase.core.i18n import Msg
from citybase.core.ids import validate_id_number, validate_uscc
from citybase.core.settings import read_settings
from citybase.security import audit
from citybase.security.models import User
from citybase.security.service import TOKEN_PREFIX, Principal, principal_of
from citybase.security.settings import OidcSettings

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]  # never HS*/none
DISCOVERY = "/.well-known/openid-configuration"
_SEEN_MAX = 10_000  # tokens remembered as already audited, per process


@dataclass(frozen=True)
class OidcIdentity:
    """Who a verified token says the caller is."""

    issuer: str
    subject: str
    id_number: str  # validated GB 11643
    uscc: str | None  # validated GB 32100, when the firm claim is configured and present
    expires_at: datetime


# resolver(session, identity) -> (user, created): the account the identity is, made on first sign-in;
# Unauthenticated when the identity maps to no one. It flushes, the caller commits.
Resolver = Callable[[Session, OidcIdentity], tuple[User, bool]]

_FIX = Msg("Sign in again at /login with the city's identity provider, or use a citybase token.")


def looks_like_jwt(secret: str) -> bool:
    """A compact JWS (three base64url parts), not a citybase token."""
    return not secret.startswith(TOKEN_PREFIX) and secret.count(".") == 2 and all(secret.split("."))


def _remember(kept: OrderedDict[str, tuple[float, Any]], key: str, expires: float, value: Any, now: float) -> None:
    """Keep ``value`` under ``key`` until ``expires``, in a map of at most ``_SEEN_MAX`` entries in the order
    they came: the oldest go first once expired or when the map is full. The caller holds the lock."""
    while kept and (len(kept) >= _SEEN_MAX or next(iter(kept.values()))[0] < now):
        kept.popitem(last=False)
    kept[key] = (expires, value)


class OidcSignIn:
    """The seam: verifies the issuer's tokens and signs their holders in through the resolver."""

    def __init__(self, settings: OidcSettings, resolver: Resolver) -> None:
        if not settings.enabled:
            raise ValueError("OIDC is off: CITYBASE_OIDC_ISSUER is not set")
        self.settings = settings
        self.resolver = resolver
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None
        self._seen: OrderedDict[str, tuple[float, None]] = OrderedDict()  # digest -> (expires, —)
        self._userinfo_kept: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()  # (expires, claims)

    # ------------------------------------------------------------------ the issuer's documents

    def _get_json(self, url: str, data: bytes | None = None) -> Any:
        req = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(req, timeout=self.settings.timeout) as r:  # noqa: S310 - an http(s) URL
            return json.loads(r.read().decode("utf-8"))

    def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once; again after a failure)."""
        with self._lock:
            if self._discovery is None:
                url = self.settings.issuer.rstrip("/") + DISCOVERY
                try:
                    doc = self._get_json(url)
                except (OSError, ValueError) as exc:
                    raise Unavailable(Msg('the identity provider cannot be reached ({reason})', reason=str(exc)),
                                      fix=Msg('Check CITYBASE_OIDC_ISSUER and that the issuer is up.')) from None
                if not isinstance(doc, dict) or doc.get("issuer") != self.settings.issuer or not doc.get("jwks_uri"):
                    raise Unavailable(Msg('the identity provider\'s discovery document does not match {issuer}',
                                          issuer=self.settings.issuer),
                                      fix=Msg('Set CITYBASE_OIDC_ISSUER to exactly the issuer the document names.'))
                self._discovery = doc
                self._jwks = jwt.PyJWKClient(doc["jwks_uri"], cache_keys=False, lifespan=3600,
                                             timeout=self.settings.timeout,
                                             cooldown_duration=self.settings.jwks_refresh_cooldown)
            return self._discovery

    def public(self) -> dict[str, Any]:
        """What the login page needs: the endpoints, the client id and the scopes."""
        doc = self.discovery()
        return {"enabled": True, "issuer": self.settings.issuer, "client_id": self.settings.audience,
                "authorization_endpoint": doc.get("authorization_endpoint"),
                "token_endpoint": doc.get("token_endpoint"), "scope": self.settings.scope}

    # ------------------------------------------------------------------ tokens

    def verify(self, token: str) -> OidcIdentity:
        """The identity a token carries; Unauthenticated saying why when it does not verify."""
        self.discovery()
        assert self._jwks is not None
        s = self.settings
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(Msg('the identity provider cannot be reached ({reason})', reason=str(exc)),
                              fix=Msg('Check CITYBASE_OIDC_ISSUER and that the issuer is up.')) from None
        except jwt.DecodeError:
            raise Unauthenticated(Msg('the bearer token is not known'), fix=_FIX) from None
        except jwt.PyJWKClientError:
            raise Unauthenticated(Msg('the identity token is signed with a key the identity provider does not '
                                      'publish'), fix=_FIX) from None
        audiences = [s.audience] + ([s.api_audience] if s.api_audience else [])
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=audiences, issuer=s.issuer,
                                leeway=s.leeway, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(Msg('the identity token has expired'), fix=_FIX) from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated(Msg('the identity token is not valid yet (nbf)'), fix=_FIX) from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(Msg('the identity token is not meant for this platform (aud)'), fix=_FIX) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(Msg('the identity token was not issued by {issuer}', issuer=s.issuer),
                                  fix=_FIX) from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated(Msg('the identity token\'s signature does not verify'), fix=_FIX) from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(Msg('the identity token is not valid ({reason})', reason=str(exc)),
                                  fix=_FIX) from None
        aud = claims["aud"]
        auds = [aud] if isinstance(aud, str) else list(aud)
        if s.api_audience and s.api_audience in auds and s.audience not in auds and not claims.get(s.id_claim):
            claims = {**self._userinfo(token, str(claims["sub"]), float(claims["exp"])), **claims}
        try:
            id_number = validate_id_number(str(claims.get(s.id_claim) or ""))
        except InvalidIdentifier:
            raise Unauthenticated(Msg('the identity token has no valid ID number in its claim {claim!r}',
                                      claim=s.id_claim),
                                  fix=Msg('Ask the identity provider to release the ID number claim, or set '
                                          'CITYBASE_OIDC_ID_CLAIM to the claim that has it.')) from None
        uscc = None
        if s.firm_claim and claims.get(s.firm_claim):
            try:
                uscc = validate_uscc(str(claims[s.firm_claim]))
            except InvalidIdentifier:
                raise Unauthenticated(Msg('the identity token\'s claim {claim!r} is not a valid credit code',
                                          claim=s.firm_claim), fix=_FIX) from None
        return OidcIdentity(issuer=s.issuer, subject=str(claims["sub"]), id_number=id_number, uscc=uscc,
                            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC))

    def _userinfo(self, token: str, subject: str, expires: float) -> dict[str, Any]:
        """The claims the issuer's userinfo endpoint gives for an access token (kept until it expires)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        with self._lock:
            kept = self._userinfo_kept.get(digest)
            if kept is not None and kept[0] > now:
                return kept[1]
        endpoint = self.discovery().get("userinfo_endpoint")
        if not endpoint:
            raise Unauthenticated(Msg('the access token carries no ID number and the identity provider publishes '
                                      'no userinfo endpoint'),
                                  fix=Msg('Ask the identity provider to put the ID number claim into its access '
                                          'tokens, or sign in with the ID token.'))
        req = urllib.request.Request(endpoint, headers={"Accept": "application/json",
                                                        "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout) as r:  # noqa: S310 - an http(s) URL
                info = json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403):
                raise Unauthenticated(Msg('the identity provider refused the access token at its userinfo '
                                          'endpoint (HTTP {status})', status=exc.code), fix=_FIX) from None
            raise Unavailable(Msg('the identity provider cannot be reached ({reason})', reason=f"HTTP {exc.code}"),
                              fix=Msg('Check CITYBASE_OIDC_ISSUER and that the issuer is up.')) from None
        except (OSError, ValueError) as exc:
            raise Unavailable(Msg('the identity provider cannot be reached ({reason})', reason=str(exc)),
                              fix=Msg('Check CITYBASE_OIDC_ISSUER and that the issuer is up.')) from None
        if not isinstance(info, dict) or str(info.get("sub")) != subject:
            raise Unauthenticated(Msg('the userinfo endpoint answered for another subject than the access '
                                      'token\'s'), fix=_FIX)
        with self._lock:
            _remember(self._userinfo_kept, digest, expires, info, now)
        return info

    def sign_in(self, *, engine: Engine, sessions: Callable[[], Session], token: str,
                request_id: str) -> Principal:
        """The principal of a verified token: its account, made on first sign-in (committed here), audited."""
        identity = self.verify(token)
        with sessions() as session:
            try:
                try:
                    user, created = self.resolver(session, identity)
                except (Conflict, IntegrityError):  # another first sign-in of the same account won the race
                    session.rollback()
                    user, created = self.resolver(session, identity)
            except Unauthenticated:
                audit.record(engine, actor=f"oidc:{identity.subject}", roles="", action="oidc.sign_in_refused",
                             subject_type="oidc_subject", subject_ids=[identity.subject],
                             fields=["id_number"] + (["uscc"] if identity.uscc else []), request_id=request_id)
                raise
            if not user.active:
                raise Unauthenticated(Msg('the user is deactivated'),
                                      fix=Msg('Ask an admin to reactivate the account.'))
            principal = principal_of(user)
            session.commit()
        digest = hashlib.sha256(token.encode()).hexdigest()
        first_use = self._first_use(digest, identity.expires_at.timestamp())
        if created or first_use:
            audit.record(engine, actor=principal.actor, roles=",".join(sorted(principal.roles)),
                         action="oidc.account_created" if created else "oidc.sign_in", subject_type="user",
                         subject_ids=[principal.user_id or 0],
                         fields=["id_number"] + (["uscc"] if identity.uscc else []), request_id=request_id)
        return principal

    def _first_use(self, digest: str, expires: float) -> bool:
        """Whether this process sees the token for the first time (it is then remembered until it expires)."""
        now = time.time()
        with self._lock:
            if digest in self._seen:
                return False
            _remember(self._seen, digest, expires, None, now)
            return True

    def exchange(self, *, code: str, code_verifier: str, redirect_uri: str,
                 nonce: str | None = None) -> tuple[str, OidcIdentity]:
        """Trade an authorization code (with its PKCE verifier) for the ID token at the issuer's token
        endpoint; the token is verified (and must carry the page's ``nonce``) before it is handed back."""
        doc = self.discovery()
        if not doc.get("token_endpoint"):
            raise Unavailable(Msg('the identity provider publishes no token endpoint'),
                              fix=Msg('Check CITYBASE_OIDC_ISSUER.'))
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": code_verifier,
                "redirect_uri": redirect_uri, "client_id": self.settings.audience}
        if self.settings.client_secret:
            form["client_secret"] = self.settings.client_secret
        try:
            answer = self._get_json(doc["token_endpoint"], urllib.parse.urlencode(form).encode())
        except urllib.error.HTTPError as exc:
            raise Unauthenticated(Msg('the identity provider refused the sign-in code (HTTP {status})',
                                      status=exc.code),
                                  fix=Msg('Start the sign-in again from /login.')) from None
        except (OSError, ValueError) as exc:
            raise Unavailable(Msg('the identity provider cannot be reached ({reason})', reason=str(exc)),
                              fix=Msg('Check CITYBASE_OIDC_ISSUER and that the issuer is up.')) from None
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not looks_like_jwt(token):
            raise Unauthenticated(Msg('the identity provider answered without an ID token'),
                                  fix=Msg("Ask for the 'openid' scope (CITYBASE_OIDC_SCOPE).")) from None
        identity = self.verify(token)
        if nonce is not None and jwt.decode(token, options={"verify_signature": False}).get("nonce") != nonce:
            raise Unauthenticated(Msg('the ID token does not carry the nonce of this sign-in'),
                                  fix=Msg('Start the sign-in again from /login.'))
        return token, identity


def oidc_sign_in(resolver: Resolver, settings: OidcSettings | None = None) -> OidcSignIn | None:
    """The seam for a deployment, or None when OIDC is off."""
    settings = settings or read_settings(OidcSettings)
    return OidcSignIn(settings, resolver) if settings.enabled else None
