"""Where the token and the base URL come from: an explicit argument, else the environment."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from . import wire

TOKEN_ENV_VARS = ("MODELSCOPE_ACCESS_TOKEN", "MODELSCOPE_API_TOKEN", "MODELSCOPE_SDK_TOKEN")
BASE_URL_ENV_VAR = "MODELSCOPE_BASE_URL"
# The variable a generated snippet reads its token from.
SNIPPET_TOKEN_ENV_VAR = TOKEN_ENV_VARS[0]


def resolve_token(token: str | None = None) -> str | None:
    """The explicit token if given (and not blank), else the first set environment variable."""
    if token and token.strip():
        return token.strip()
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def token_source(token: str | None = None) -> str | None:
    """Name of the environment variable a token would come from (None if explicit or unset)."""
    if token and token.strip():
        return None
    for name in TOKEN_ENV_VARS:
        if os.environ.get(name, "").strip():
            return name
    return None


def normalize_base_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
    # Accept ".../v1" or ".../v1/" too: one base URL drives both chat and images.
    stripped = url.rstrip("/")
    if stripped.endswith("/v1"):
        stripped = stripped[: -len("/v1")]
    return stripped + "/"


def resolve_base_url(base_url: str | None = None) -> str:
    if base_url and base_url.strip():
        return normalize_base_url(base_url)
    env = os.environ.get(BASE_URL_ENV_VAR, "").strip()
    return normalize_base_url(env or wire.DEFAULT_BASE_URL)


def chat_base_url(base_url: str) -> str:
    """The openai SDK's base_url for a given API-Inference base URL."""
    return normalize_base_url(base_url) + wire.CHAT_PREFIX


@dataclass(frozen=True)
class Site:
    """The ModelScope website that goes with an API host: where its users get a token and bind
    their account (modelscope.ai accounts cannot use modelscope.cn pages, and back)."""

    home: str

    @property
    def token_page(self) -> str:
        return self.home + wire.TOKEN_PAGE_PATH

    @property
    def account_page(self) -> str:
        return self.home + wire.ACCOUNT_PAGE_PATH

    def localize(self, text: str) -> str:
        """`text` with links to the default site pointed at this one."""
        if self.home == wire.DEFAULT_SITE or not text:
            return text
        return text.replace(wire.DEFAULT_SITE, self.home).replace(
            "www." + wire.DEFAULT_SITE.split("//", 1)[1], self.home.split("//", 1)[1])


def site_for(base_url: str | None) -> Site:
    """The website of the API host in `base_url` (the .cn site for any other host, such as a
    simulator)."""
    from urllib.parse import urlparse

    host = (urlparse(base_url or "").hostname or "").lower()
    for suffix, home in wire.SITES:
        if host == suffix or host.endswith("." + suffix):
            return Site(home)
    return Site(wire.DEFAULT_SITE)


def fingerprint(token: str | None) -> str:
    """A short, stable, non-reversible name for a token, safe to log or show."""
    if not token:
        return "none"
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def redact(text: str, token: str | None) -> str:
    """Replace every occurrence of token in text."""
    if token and text:
        return text.replace(token, "<redacted>")
    return text


@dataclass(frozen=True)
class Settings:
    """A resolved (token, base URL) pair. repr never shows the token."""

    token: str | None
    base_url: str

    @classmethod
    def resolve(cls, token: str | None = None, base_url: str | None = None) -> Settings:
        return cls(resolve_token(token), resolve_base_url(base_url))

    def __repr__(self) -> str:  # the token must never reach a log through a repr
        return f"Settings(token={fingerprint(self.token)}, base_url={self.base_url!r})"
