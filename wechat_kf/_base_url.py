"""The base URL a client talks to: https, or plain http only where that is safe (a loopback fake
server) or asked for."""

from __future__ import annotations

import ipaddress
import logging

import httpx

__all__ = ["check_base_url"]

# The transport's logger: this check ran there before it had a module of its own.
logger = logging.getLogger("wechat_kf.transport")


def check_base_url(base_url: str, allow_insecure_http: bool = False) -> str:
    """``base_url`` without a trailing slash; ValueError unless it is https, or http on loopback,
    or http anywhere when the caller opted in (then with a WARNING: tokens travel in clear)."""
    if not isinstance(base_url, str):
        raise TypeError("base_url must be a str")
    if not isinstance(allow_insecure_http, bool):
        raise TypeError("allow_insecure_http must be a bool")
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"invalid base_url: {exc}") from None
    if url.scheme == "https" and url.host:
        return base_url.rstrip("/")
    if url.scheme == "http" and _is_loopback(url.host):
        return base_url.rstrip("/")
    if url.scheme == "http" and url.host and allow_insecure_http:
        logger.warning(
            "plain http to %s (allow_insecure_http): tokens travel unencrypted; "
            "use this only for a fake server, never for WeChat",
            url.host,
        )
        return base_url.rstrip("/")
    raise ValueError(
        "base_url must be https:// (plain http:// only on a loopback host, or with "
        "allow_insecure_http=True for a fake server on another host)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
