"""``spec.requirements`` of a CertificatePolicy → a typed, validated :class:`Requirements`.

The CRD's OpenAPI schema rejects wrong *types* at the API server; this module rejects wrong
*meanings* (an unknown EKU, a pattern with a wildcard in the middle, a critical threshold longer
than the warning one, a required name the allowed patterns exclude) with messages that say what to
change. The same code validates ``certpolicy check --policy FILE`` and its flags, where no API
server stands in front.

The trust bundle is deliberately not part of :class:`Requirements`: the operator resolves
``spec.requirements.trustBundle`` from the cluster and hands the certificates to the evaluator.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certpolicy.pki.inspect import EKU_BY_NAME
from certpolicy.policy.dnsnames import pattern_allows, quoted, validate_pattern
from certpolicy.policy.durations import format_duration, parse_duration
from certpolicy.policy.findings import REASONS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PolicySpecError(ValueError):
    """A policy that cannot be applied as written. ``problems`` lists each issue on its own."""

    #: problems spelled out in the message (a condition message must stay small); the rest are counted
    MAX_LISTED = 10

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        more = len(self.problems) - self.MAX_LISTED
        super().__init__("; ".join(self.problems[: self.MAX_LISTED]) + (f"; and {more} more" if more > 0 else ""))


# --- requirements --------------------------------------------------------------------------------

DEFAULT_WARNING_BEFORE = dt.timedelta(hours=720)
DEFAULT_CRITICAL_BEFORE = dt.timedelta(hours=168)
DEFAULT_EC_CURVES = ("P-256", "P-384", "P-521")
DEFAULT_SIGNATURE_HASHES = ("sha256", "sha384", "sha512")

_CURVES = {
    "p-256": "P-256",
    "p256": "P-256",
    "secp256r1": "P-256",
    "prime256v1": "P-256",
    "p-384": "P-384",
    "p384": "P-384",
    "secp384r1": "P-384",
    "p-521": "P-521",
    "p521": "P-521",
    "secp521r1": "P-521",
    "p-224": "P-224",
    "secp224r1": "P-224",
    "p-192": "P-192",
    "secp192r1": "P-192",
    "secp256k1": "secp256k1",
    "brainpoolp256r1": "brainpoolP256r1",
    "brainpoolp384r1": "brainpoolP384r1",
    "brainpoolp512r1": "brainpoolP512r1",
}
_HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3-224", "sha3-256", "sha3-384", "sha3-512")

FIELDS = (
    "extendedKeyUsages",
    "allowedDNSNames",
    "requiredDNSNames",
    "allowedIPRanges",
    "requiredIPAddresses",
    "requireSAN",
    "expiry",
    "minimumRSABits",
    "allowedECCurves",
    "allowedSignatureHashes",
    "requirePrivateKey",
    "trustBundle",  # resolved by the operator, not here
    "trustedBy",  # the peers' trust stores: parsed by truststore_selection_from_spec, resolved by the operator
    "renewal",  # the renewal regression guard: parsed by renewal_guard_from_spec, kept by the operator
)


@dataclass(frozen=True)
class Requirements:
    """What a policy demands of every certificate it governs. Hashable (cached hash): it is part of
    the evaluation cache key, looked up hundreds of thousands of times a second."""

    extended_key_usages: tuple[str, ...] = ()
    allowed_dns_names: tuple[str, ...] = ()
    required_dns_names: tuple[str, ...] = ()
    allowed_ip_ranges: tuple[IPNetwork, ...] = ()
    required_ip_addresses: tuple[IPAddress, ...] = ()
    require_san: bool = True
    warning_before: dt.timedelta = DEFAULT_WARNING_BEFORE
    critical_before: dt.timedelta = DEFAULT_CRITICAL_BEFORE
    minimum_rsa_bits: int = 2048
    allowed_ec_curves: tuple[str, ...] = DEFAULT_EC_CURVES
    allowed_signature_hashes: tuple[str, ...] = DEFAULT_SIGNATURE_HASHES
    require_private_key: bool = False
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(self._key()))

    def _key(self) -> tuple[Any, ...]:
        return (
            self.extended_key_usages,
            self.allowed_dns_names,
            self.required_dns_names,
            self.allowed_ip_ranges,
            self.required_ip_addresses,
            self.require_san,
            self.warning_before,
            self.critical_before,
            self.minimum_rsa_bits,
            self.allowed_ec_curves,
            self.allowed_signature_hashes,
            self.require_private_key,
        )

    def __hash__(self) -> int:
        return self._hash

    def to_spec(self) -> dict[str, Any]:
        """The ``spec.requirements`` mapping that parses back to these requirements."""
        return {
            "extendedKeyUsages": list(self.extended_key_usages),
            "allowedDNSNames": list(self.allowed_dns_names),
            "requiredDNSNames": list(self.required_dns_names),
            "allowedIPRanges": [str(n) for n in self.allowed_ip_ranges],
            "requiredIPAddresses": [str(a) for a in self.required_ip_addresses],
            "requireSAN": self.require_san,
            "expiry": {"warningBefore": format_duration(self.warning_before), "criticalBefore": format_duration(self.critical_before)},
            "minimumRSABits": self.minimum_rsa_bits,
            "allowedECCurves": list(self.allowed_ec_curves),
            "allowedSignatureHashes": list(self.allowed_signature_hashes),
            "requirePrivateKey": self.require_private_key,
        }


def requirements_from_spec(spec: Mapping[str, Any] | None) -> Requirements:
    """Validate and type a policy's requirements.

    ``spec`` is either the ``spec.requirements`` mapping or the whole ``spec`` (its
    ``requirements`` is used). Missing fields take the CRD's defaults. Raises
    :class:`PolicySpecError` listing every problem found, each phrased as what to change.
    """
    if spec is None:
        return Requirements()
    if not isinstance(spec, Mapping):
        raise PolicySpecError([f"spec.requirements must be a mapping, got {type(spec).__name__}"])
    if isinstance(spec.get("requirements"), Mapping) or ("requirements" in spec and spec.get("requirements") is None):
        spec = spec.get("requirements") or {}
    problems: list[str] = []
    for k in spec:
        if k not in FIELDS:
            close = difflib.get_close_matches(str(k), FIELDS, n=1)
            problems.append(f"unknown field spec.requirements.{k}" + (f" (did you mean '{close[0]}'?)" if close else f"; known fields: {', '.join(FIELDS)}"))

    ekus = _ekus(spec.get("extendedKeyUsages"), problems)
    allowed = _patterns("allowedDNSNames", spec.get("allowedDNSNames"), problems)
    required = _patterns("requiredDNSNames", spec.get("requiredDNSNames"), problems)
    if allowed:
        for name in required:
            if not any(pattern_allows(p, name) for p in allowed):
                problems.append(f"requiredDNSNames '{name}' is not allowed by allowedDNSNames [{quoted(allowed)}]: no certificate could satisfy this policy")
    ranges = _ranges(spec.get("allowedIPRanges"), problems)
    ips = _addresses(spec.get("requiredIPAddresses"), problems)
    if ranges:
        for ip in ips:
            if not any(ip in r for r in ranges if r.version == ip.version):
                problems.append(f"requiredIPAddresses '{ip}' is outside allowedIPRanges {[str(r) for r in ranges]}: no certificate could satisfy this policy")
    require_san = _bool("requireSAN", spec.get("requireSAN"), True, problems)
    warning, critical = _expiry(spec.get("expiry"), problems)
    min_rsa = _int("minimumRSABits", spec.get("minimumRSABits"), 2048, 1024, 16384, problems)
    curves = _curves(spec.get("allowedECCurves"), problems)
    hashes = _hashes(spec.get("allowedSignatureHashes"), problems)
    require_key = _bool("requirePrivateKey", spec.get("requirePrivateKey"), False, problems)
    if spec.get("trustedBy") is not None:
        truststore_selection_from_spec(spec.get("trustedBy"), "requirements.trustedBy", problems)
    _renewal_guard(spec.get("renewal"), problems)
    if problems:
        raise PolicySpecError(problems)
    return Requirements(
        extended_key_usages=ekus,
        allowed_dns_names=allowed,
        required_dns_names=required,
        allowed_ip_ranges=ranges,
        required_ip_addresses=ips,
        require_san=require_san,
        warning_before=warning,
        critical_before=critical,
        minimum_rsa_bits=min_rsa,
        allowed_ec_curves=curves,
        allowed_signature_hashes=hashes,
        require_private_key=require_key,
    )


def _list(name: str, value: object, problems: list[str]) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        problems.append(f"{name} must be a list, got {type(value).__name__} {value!r}")
        return []
    return list(value)


def _strings(name: str, value: object, problems: list[str]) -> list[str]:
    out = []
    for i, v in enumerate(_list(name, value, problems)):
        if not isinstance(v, str) or not v.strip():
            problems.append(f"{name}[{i}] must be a non-empty string, got {v!r}")
        else:
            out.append(v.strip())
    return out


def _dedupe(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def _ekus(value: object, problems: list[str]) -> tuple[str, ...]:
    by_lower = {n.lower(): n for n in EKU_BY_NAME}
    out = []
    for v in _strings("extendedKeyUsages", value, problems):
        canon = by_lower.get(v.lower())
        if canon is None:
            problems.append(f"extendedKeyUsages: unknown usage '{v}'; use one of {', '.join(EKU_BY_NAME)}")
        else:
            out.append(canon)
    return _dedupe(out)


def _patterns(name: str, value: object, problems: list[str]) -> tuple[str, ...]:
    out = []
    for v in _strings(name, value, problems):
        try:
            out.append(validate_pattern(v))
        except ValueError as e:
            problems.append(f"{name}: {e}")
    return _dedupe(out)


def _ranges(value: object, problems: list[str]) -> tuple[IPNetwork, ...]:
    out = []
    for v in _strings("allowedIPRanges", value, problems):
        try:
            out.append(ipaddress.ip_network(v, strict=False))
        except ValueError:
            problems.append(f"allowedIPRanges: '{v}' is not a CIDR range such as '10.0.0.0/8' or 'fd00::/8'")
    return _dedupe(out)


def _addresses(value: object, problems: list[str]) -> tuple[IPAddress, ...]:
    out = []
    for v in _strings("requiredIPAddresses", value, problems):
        try:
            out.append(ipaddress.ip_address(v))
        except ValueError:
            problems.append(f"requiredIPAddresses: '{v}' is not an IP address")
    return _dedupe(out)


def _bool(name: str, value: object, default: bool, problems: list[str]) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.append(f"{name} must be true or false, got {value!r}")
        return default
    return value


def _int(name: str, value: object, default: int, lo: int, hi: int, problems: list[str]) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{name} must be an integer, got {value!r}")
        return default
    if not lo <= value <= hi:
        problems.append(f"{name} must be between {lo} and {hi}, got {value}")
        return default
    return value


def _expiry(value: object, problems: list[str]) -> tuple[dt.timedelta, dt.timedelta]:
    warning, critical = DEFAULT_WARNING_BEFORE, DEFAULT_CRITICAL_BEFORE
    if value is None:
        return warning, critical
    if not isinstance(value, Mapping):
        problems.append(f"expiry must be a mapping like {{warningBefore: 720h, criticalBefore: 168h}}, got {value!r}")
        return warning, critical
    for k in value:
        if k not in ("warningBefore", "criticalBefore"):
            problems.append(f"unknown field spec.requirements.expiry.{k} (known: warningBefore, criticalBefore)")
    parsed = {}
    for k, default in (("warningBefore", warning), ("criticalBefore", critical)):
        raw = value.get(k)
        if raw is None:
            parsed[k] = default
            continue
        try:
            d = parse_duration(raw)
        except ValueError as e:
            problems.append(f"expiry.{k}: {e}")
            parsed[k] = default
            continue
        if d < dt.timedelta(0):
            problems.append(f"expiry.{k} must not be negative, got {raw!r}")
            d = default
        parsed[k] = d
    warning, critical = parsed["warningBefore"], parsed["criticalBefore"]
    if critical > warning:
        problems.append(
            f"expiry.criticalBefore ({format_duration(critical)}) is longer than expiry.warningBefore ({format_duration(warning)}): "
            "the warning would never be seen; make warningBefore the longer one"
        )
    return warning, critical


def _curves(value: object, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_EC_CURVES
    out = []
    for v in _strings("allowedECCurves", value, problems):
        canon = _CURVES.get(v.lower())
        if canon is None:
            problems.append(f"allowedECCurves: unknown curve '{v}'; use P-256, P-384, P-521 (or secp256k1, brainpoolP256r1, ...)")
        else:
            out.append(canon)
    return _dedupe(out)


def _hashes(value: object, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_SIGNATURE_HASHES
    out = []
    for v in _strings("allowedSignatureHashes", value, problems):
        canon = v.lower().replace("_", "-")
        if canon.startswith("sha-"):
            canon = "sha" + canon[4:]
        if canon not in _HASHES:
            problems.append(f"allowedSignatureHashes: unknown hash '{v}'; use sha256, sha384, sha512")
        else:
            out.append(canon)
    if isinstance(value, list) and not value:
        problems.append("allowedSignatureHashes is empty: every certificate would be rejected; omit it for the default [sha256, sha384, sha512]")
    return _dedupe(out)


# --- trust stores selected by label ----------------------------------------------------------


@dataclass(frozen=True)
class TruststoreSelection:
    """ConfigMaps and Secrets holding trust stores, selected by label (``spec.trustStores`` and
    ``spec.requirements.trustedBy`` share this shape). Selectors stay in their spec form; the
    operator turns them into server-side label selectors."""

    selector: tuple[tuple[str, Any], ...]  # the labelSelector mapping, as sorted items
    namespace_selector: tuple[tuple[str, Any], ...] = ()
    keys: tuple[str, ...] = ()  # data keys (glob patterns); empty: the trust store key patterns
    password_secret: str | None = None  # a Secret in each store's namespace holding the password
    password_key: str = "password"

    def selector_spec(self) -> dict[str, Any]:
        return _thawed(self.selector) if self.selector else {}

    def namespace_selector_spec(self) -> dict[str, Any]:
        return _thawed(self.namespace_selector) if self.namespace_selector else {}


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in value):
        return {k: _thawed(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def password_ref_from_spec(ref: object, where: str, problems: list[str]) -> tuple[str | None, str]:
    """(Secret name, data key) of a ``passwordSecretRef`` under ``where`` (``spec.selector``,
    ``trustStores``, ``trustedBy``): a Secret in the keystore's own namespace. (None, "password")
    when absent; a malformed one is appended to ``problems``."""
    if ref is None:
        return None, "password"
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref.get("name"):
        problems.append(f"{where}.passwordSecretRef must name a Secret: {{name: ..., key: password}}")
        return None, "password"
    return ref["name"], str(ref.get("key") or "password")


def truststore_selection_from_spec(value: object, where: str, problems: list[str] | None = None) -> TruststoreSelection | None:
    """Validate ``trustedBy`` / ``trustStores``. With ``problems`` given, problems are appended
    there; otherwise :class:`PolicySpecError` is raised. None when ``value`` is None."""
    own = problems is None
    problems = [] if problems is None else problems
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{where} must be a mapping like {{selector: {{matchLabels: {{...}}}}}}, got {type(value).__name__}")
        if own:
            raise PolicySpecError(problems)
        return None
    known = ("selector", "namespaceSelector", "keys", "passwordSecretRef")
    for k in value:
        if k not in known:
            problems.append(f"unknown field spec.{where}.{k} (known: {', '.join(known)})")
    selector = value.get("selector")
    if not isinstance(selector, Mapping) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problems.append(f"{where}.selector must select by label (matchLabels or matchExpressions): "
                        "trust stores are found by a server-side label selector, never by listing every object")
    ns_sel = value.get("namespaceSelector")
    if ns_sel is not None and not isinstance(ns_sel, Mapping):
        problems.append(f"{where}.namespaceSelector must be a label selector mapping")
    keys = _strings(f"{where}.keys", value.get("keys"), problems)
    pw_name, pw_key = password_ref_from_spec(value.get("passwordSecretRef"), where, problems)
    if own and problems:
        raise PolicySpecError(problems)
    if problems:
        return None
    return TruststoreSelection(_frozen(selector), _frozen(ns_sel or {}), _dedupe(keys), pw_name, pw_key)


# --- the renewal regression guard ---------------------------------------------------------------

#: The reasons ``spec.requirements.renewal.ignore`` may list: every reason of the guard.
RENEWAL_IGNORABLE: tuple[str, ...] = tuple(r.reason for r in REASONS.values() if r.category == "renewal")


@dataclass(frozen=True)
class RenewalGuard:
    """``spec.requirements.renewal``: the guard is on unless ``guard: false``; ``ignore`` names
    regressions that are expected (say, an anchor change during a planned CA move). Not part of
    :class:`Requirements`: it does not change how one certificate is judged, only how a leaf is
    compared with the one before it, which the operator keeps (``handlers/renewal.py``)."""

    enabled: bool = True
    ignore: frozenset[str] = frozenset()


def renewal_guard_from_spec(spec: Mapping[str, Any] | None) -> RenewalGuard:
    """The guard settings of a policy's ``spec`` (or its ``spec.requirements``); raises
    :class:`PolicySpecError` like :func:`requirements_from_spec`."""
    requirements = (spec or {}).get("requirements", spec) if isinstance(spec, Mapping) else None
    problems: list[str] = []
    guard = _renewal_guard((requirements or {}).get("renewal") if isinstance(requirements, Mapping) else None,
                           problems)
    if problems:
        raise PolicySpecError(problems)
    return guard


def _renewal_guard(value: object, problems: list[str]) -> RenewalGuard:
    if value is None:
        return RenewalGuard()
    if not isinstance(value, Mapping):
        problems.append(f"renewal must be a mapping like {{guard: true, ignore: [RenewalChangedAnchor]}}, got {value!r}")
        return RenewalGuard()
    for k in value:
        if k not in ("guard", "ignore"):
            problems.append(f"unknown field spec.requirements.renewal.{k} (known: guard, ignore)")
    enabled = _bool("renewal.guard", value.get("guard"), True, problems)
    ignore = []
    for v in _strings("renewal.ignore", value.get("ignore"), problems):
        if v not in RENEWAL_IGNORABLE:
            problems.append(f"renewal.ignore: unknown reason '{v}'; use one of {', '.join(RENEWAL_IGNORABLE)}")
        else:
            ignore.append(v)
    return RenewalGuard(enabled, frozenset(ignore))
