"""Which hosts rotation probes may connect to: the operator's ``--probe-allow`` list.

Pure (no sockets): the operator asks it before every canary handshake
(``handlers/probes.py``), and ``kubectl certpolicy rotate --plan`` asks it to foresee a probe the
operator would refuse (``ProbeNotAllowed``), which holds a rotation at step 2 for ever.
``CERTPOLICY_PROBE_ALLOW`` (set by ``certpolicy run --probe-allow``) holds host patterns and
CIDRs; the default is the cluster's service names, ``*.svc`` and ``*.svc.<cluster domain>``
(``CERTPOLICY_CLUSTER_DOMAIN``, default ``cluster.local``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

PROBE_ALLOW_ENV = "CERTPOLICY_PROBE_ALLOW"
CLUSTER_DOMAIN_ENV = "CERTPOLICY_CLUSTER_DOMAIN"


@dataclass(frozen=True)
class AllowList:
    """Host patterns (``name``, ``*.suffix`` = any name under the suffix) and CIDRs."""

    patterns: tuple[str, ...]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, text: str) -> AllowList:
        patterns, networks = [], []
        for item in (i.strip().lower().rstrip(".") for i in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                patterns.append(item)
        return cls(tuple(patterns), tuple(networks))

    @classmethod
    def from_env(cls) -> AllowList:
        domain = os.environ.get(CLUSTER_DOMAIN_ENV, "cluster.local").strip(".")
        return cls.parse(os.environ.get(PROBE_ALLOW_ENV) or f"*.svc,*.svc.{domain}")

    def allows(self, host: str) -> bool:
        host = host.strip().lower().rstrip(".")
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ip = None
        if ip is not None:
            return any(ip.version == n.version and ip in n for n in self.networks)
        for p in self.patterns:
            if p.startswith("*."):
                if host.endswith(p[1:]) and len(host) > len(p) - 1:
                    return True
            elif host == p:
                return True
        return False

    def describe(self) -> str:
        return ", ".join([*self.patterns, *(str(n) for n in self.networks)]) or "nothing"

    def refusal(self, host: str) -> str | None:
        """Why a probe to ``host`` is never run (None: it may be). The operator's probe result and
        the plan's forecast both say it in these words."""
        if self.allows(host):
            return None
        return (f"ProbeNotAllowed: {host} is not on the operator's probe allow-list "
                f"({self.describe()}; set with --probe-allow); not connected")
