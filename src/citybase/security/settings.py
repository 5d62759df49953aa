"""The identity domain's settings (CITYBASE_OIDC_*): 统一身份认证 through the city's identity provider,
validated at start like the platform's; OpenID Connect is off while CITYBASE_OIDC_ISSUER is unset."""

from __future__ import annotations

from functools import cache

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from citybase.core.settings import read_settings


class OidcSettings(BaseSettings):
    """The city's identity provider (CITYBASE_OIDC_*); unset issuer = OIDC off."""

    model_config = SettingsConfigDict(env_prefix="CITYBASE_OIDC_", env_ignore_empty=True, frozen=True,
                                      extra="ignore")

    issuer: str = Field("", pattern=r"^(https?://\S+)?$",
                        description="the identity provider's issuer URL (https://…), or empty for OIDC off")
    audience: str = Field("", validate_default=True,
                          description="the client id citybase is registered with at the issuer (needed with "
                                      "CITYBASE_OIDC_ISSUER)")
    api_audience: str = Field("", description="the audience of the issuer's JWT access tokens for the citybase API "
                                            "(RFC 9068), to accept them as bearer tokens besides ID tokens; empty: "
                                            "ID tokens only")
    client_secret: str = Field("", description="the client secret, if the issuer wants one at its token endpoint")
    id_claim: str = Field("id_number", pattern=r"^[A-Za-z0-9_.:/-]+$",
                          description="the name of the claim with the person's GB 11643 ID number")
    firm_claim: str = Field("", pattern=r"^([A-Za-z0-9_.:/-]+)?$",
                            description="the name of the claim with a firm's GB 32100 credit code, or empty")
    scope: str = Field("openid profile", min_length=1, description="the scopes the login page asks for")
    leeway: int = Field(30, ge=0, le=300, description="seconds of clock skew allowed on exp/nbf (0–300)")
    jwks_refresh_cooldown: float = Field(
        30.0, ge=0, description="the least number of seconds between two JWKS fetches forced by an unknown kid")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for the issuer (a number 0–60)")

    @field_validator("audience")
    @classmethod
    def _audience_with_issuer(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("issuer") and not v:
            raise ValueError("audience is needed when the issuer is set")
        return v

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


@cache
def oidc_settings() -> OidcSettings:
    """The OIDC settings, read once per process (the CLI has validated them at start)."""
    return read_settings(OidcSettings)


