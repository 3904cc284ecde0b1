"""Settings base: 12-factor environment variables, secrets also readable from files (Kubernetes secrets)."""

from __future__ import annotations

import logging
import os
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where mounted secret files live; a file named like the field (e.g. auth_jwt_secret) supplies its value.
SECRETS_DIR = os.environ.get("POLICYLOOP_SECRETS_DIR", "/run/secrets")

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "changethis", "secret", "dev-secret"}


class ServiceSettings(BaseSettings):
    """Settings every service shares; subclasses add their own fields."""

    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        secrets_dir=SECRETS_DIR if os.path.isdir(SECRETS_DIR) else None,
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    service_name: str = "policyloop"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_client_extra: str = ""  # "key=value,key=value" passed to librdkafka as is, for what has no field here

    auth_jwt_secret: str = ""
    # During a rotation of an HS* secret, tokens signed with the previous one stay valid until it is removed.
    auth_jwt_previous_secret: str = ""
    auth_jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "ES256", "ES384"] = "HS256"
    auth_jwt_issuer: str = "policyloop"
    auth_jwt_audience: str = "policyloop"
    auth_jwks_url: str | None = None
    auth_clock_skew_seconds: int = 30
    auth_jwks_cache_seconds: int = 300
    auth_jwks_refresh_cooldown_seconds: float = 30.0

    # Browser origins (the dashboard's) allowed to call the API; empty closes CORS entirely.
    cors_allowed_origins: str = ""

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        """Outside development a symmetric algorithm needs a real secret, an asymmetric one a JWKS URL."""
        if self.environment == "production":
            if self.auth_jwt_algorithm.startswith("HS"):
                if self.auth_jwt_secret.lower() in PLACEHOLDER_SECRETS or len(self.auth_jwt_secret) < 32:
                    raise ValueError("AUTH_JWT_SECRET must be a real secret of at least 32 characters in production")
            elif not self.auth_jwks_url:
                raise ValueError(f"AUTH_JWKS_URL is required for {self.auth_jwt_algorithm}")
        return self

    def cors_origins(self) -> list[str]:
        """CORS_ALLOWED_ORIGINS as a list; a wildcard is refused, credentials travel in headers."""
        origins = [origin.strip() for origin in self.cors_allowed_origins.split(",") if origin.strip()]
        if "*" in origins:
            raise ValueError("CORS_ALLOWED_ORIGINS must name origins; '*' is not allowed")
        return origins

    def kafka_config(self) -> dict:
        """The librdkafka settings common to producers and consumers."""
        config = {
            # librdkafka's own messages go through Python logging, hence into the JSON log lines.
            "logger": logging.getLogger("librdkafka"),
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
            "client.id": self.service_name,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username or ""
            config["sasl.password"] = self.kafka_sasl_password or ""
        for pair in filter(None, (item.strip() for item in self.kafka_client_extra.split(","))):
            name, _, value = pair.partition("=")
            config[name.strip()] = value.strip()
        return config
