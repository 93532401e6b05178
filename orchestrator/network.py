"""Where a URL or host points: loopback means only this machine can reach it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse


def is_loopback(host_or_url: str) -> bool:
    """Whether a host (or a URL's host) is this machine's loopback."""
    host = urlparse(host_or_url).hostname if "://" in host_or_url else host_or_url
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False
