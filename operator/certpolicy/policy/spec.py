"""``spec.requirements`` of a CertificatePolicy → a typed, validated :class:`Requirements`.

The CRD's OpenAPI schema rejects wrong *types* at the API server; this module rejects wrong
*meanings* (an unknown EKU, a pattern with a wildcard in the middle, a critical threshold longer
than the warning one, a required name the allowed patterns exclude) with messages that say what to
change. The same code validates ``certpolicy check --policy FILE`` and its flags, where no API
server stands in front.

Each field of :class:`Requirements` is a knob (``policy/knobs.py``) that declares, in one place,
its spec name, parser, CRD schema and ``certpolicy check`` flag; the CRD's schema of the knobs is
written from here by ``scripts/gen_crd.py``, so the types the API server checks and the meanings
this module checks are stated side by side.

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
from certpolicy.policy import knobs
from certpolicy.policy.dnsnames import pattern_allows, quoted, validate_pattern
from certpolicy.policy.durations import format_duration, parse_duration
from certpolicy.policy.findings import REASONS
from certpolicy.policy.knobs import Flag, Group, Knob, declared, knob, schema_properties, top_level_names

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
#
# Each requirement is one field of :class:`Requirements` declared with :func:`knob`: its spec name,
# parser, CRD schema (with its description) and ``certpolicy check`` flag sit together, and the
# known fields, ``requirements_from_spec``, ``to_spec``, the CRD fragment (``scripts/gen_crd.py``)
# and the check command's flags are derived from them (``policy/knobs.py``).

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

#: A Go duration as the CRD's CEL rules match it (the API server's check; ``parse_duration`` is ours).
_DURATION_RE = "^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$"
_DURATION_RULES = [{
    "rule": f"self.matches('{_DURATION_RE}')",
    "message": "not a duration: write hours, minutes or seconds with a unit: 720h for 30 days, 168h for 7 days, "
               "1h30m, 90s (also ms, us, ns); days are not a unit",
}]


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


def _bool(name: str, value: object, default: bool, problems: list[str]) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.append(f"{name} must be true or false, got {value!r}")
        return default
    return value


# Knob parsers: (knob, value as written, default, problems) -> typed value (policy/knobs.py).

def _ekus(knob: Knob, value: object, default: tuple[str, ...], problems: list[str]) -> tuple[str, ...]:
    by_lower = {n.lower(): n for n in EKU_BY_NAME}
    out = []
    for v in _strings(knob.key, value, problems):
        canon = by_lower.get(v.lower())
        if canon is None:
            problems.append(f"{knob.key}: unknown usage '{v}'; use one of {', '.join(EKU_BY_NAME)}")
        else:
            out.append(canon)
    return _dedupe(out)


def _patterns(knob: Knob, value: object, default: tuple[str, ...], problems: list[str]) -> tuple[str, ...]:
    out = []
    for v in _strings(knob.key, value, problems):
        try:
            out.append(validate_pattern(v))
        except ValueError as e:
            problems.append(f"{knob.key}: {e}")
    return _dedupe(out)


def _ranges(knob: Knob, value: object, default: tuple[IPNetwork, ...], problems: list[str]) -> tuple[IPNetwork, ...]:
    out = []
    for v in _strings(knob.key, value, problems):
        try:
            out.append(ipaddress.ip_network(v, strict=False))
        except ValueError:
            problems.append(f"{knob.key}: '{v}' is not a CIDR range such as '10.0.0.0/8' or 'fd00::/8'")
    return _dedupe(out)


def _addresses(knob: Knob, value: object, default: tuple[IPAddress, ...], problems: list[str]) -> tuple[IPAddress, ...]:
    out = []
    for v in _strings(knob.key, value, problems):
        try:
            out.append(ipaddress.ip_address(v))
        except ValueError:
            problems.append(f"{knob.key}: '{v}' is not an IP address")
    return _dedupe(out)


def _flag(knob: Knob, value: object, default: bool, problems: list[str]) -> bool:
    return _bool(knob.key, value, default, problems)


def _int(knob: Knob, value: object, default: int, problems: list[str]) -> int:
    """An integer within the schema's ``minimum`` and ``maximum`` (one statement of the bounds)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{knob.key} must be an integer, got {value!r}")
        return default
    lo, hi = knob.schema["minimum"], knob.schema["maximum"]
    if not lo <= value <= hi:
        problems.append(f"{knob.key} must be between {lo} and {hi}, got {value}")
        return default
    return value


def _duration(knob: Knob, value: Any, default: dt.timedelta, problems: list[str]) -> dt.timedelta:
    # Any: parse_duration refuses a non-string itself, with the message users read.
    if value is None:
        return default
    try:
        d = parse_duration(value)
    except ValueError as e:
        problems.append(f"{knob.key}: {e}")
        return default
    if d < dt.timedelta(0):
        problems.append(f"{knob.key} must not be negative, got {value!r}")
        return default
    return d


def _curves(knob: Knob, value: object, default: tuple[str, ...], problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return default
    out = []
    for v in _strings(knob.key, value, problems):
        canon = _CURVES.get(v.lower())
        if canon is None:
            problems.append(f"{knob.key}: unknown curve '{v}'; use P-256, P-384, P-521 (or secp256k1, brainpoolP256r1, ...)")
        else:
            out.append(canon)
    return _dedupe(out)


def _hashes(knob: Knob, value: object, default: tuple[str, ...], problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return default
    out = []
    for v in _strings(knob.key, value, problems):
        canon = v.lower().replace("_", "-")
        if canon.startswith("sha-"):
            canon = "sha" + canon[4:]
        if canon not in _HASHES:
            problems.append(f"{knob.key}: unknown hash '{v}'; use sha256, sha384, sha512")
        else:
            out.append(canon)
    if isinstance(value, list) and not value:
        problems.append(f"{knob.key} is empty: every certificate would be rejected; omit it for the default [sha256, sha384, sha512]")
    return _dedupe(out)


def _strs(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


#: Objects of spec.requirements that hold knobs (``expiry.warningBefore``): their own schema.
GROUPS: dict[str, Group] = {
    "expiry": Group(
        schema={
            "type": "object",
            "default": {},
            "description": "How long before notAfter a certificate is reported, at every level of the chain (leaf, "
                           "intermediate, root, bundle CA). Every duration field of a policy is a Go duration: "
                           "numbers each with a unit h, m, s, ms, us or ns, e.g. 720h, 1h30m, 90s, 1.5h; days are "
                           "not a unit (30 days: 720h), and anything else is refused with that advice.",
            "x-kubernetes-validations": [{
                "rule": "!has(self.warningBefore) || !has(self.criticalBefore) || "
                        f"!self.warningBefore.matches('{_DURATION_RE}') || "
                        f"!self.criticalBefore.matches('{_DURATION_RE}') || "
                        "duration(self.criticalBefore) <= duration(self.warningBefore)",
                "message": "criticalBefore must not be longer than warningBefore",
            }],
        },
        example="{warningBefore: 720h, criticalBefore: 168h}",
    ),
}

#: spec.requirements fields that are not knobs of :class:`Requirements`: each has a parser and a
#: hand-written CRD schema of its own.
OTHER_FIELDS = (
    "trustBundle",  # resolved by the operator, not here
    "trustedBy",  # the peers' trust stores: parsed by truststore_selection_from_spec, resolved by the operator
    "renewal",  # the renewal regression guard: parsed by renewal_guard_from_spec, kept by the operator
)


@dataclass(frozen=True)
class Requirements:
    """What a policy demands of every certificate it governs. Hashable (cached hash): it is part of
    the evaluation cache key, looked up hundreds of thousands of times a second.

    Each field is a knob (``policy/knobs.py``): its spec name, parser, CRD schema and flag are
    declared here and nowhere else; ``scripts/gen_crd.py`` writes the CRD's fragment from them."""

    extended_key_usages: tuple[str, ...] = knob(
        (), key="extendedKeyUsages", parse=_ekus, dump=list,
        schema={
            "type": "array",
            "maxItems": 6,
            "description": "Extended Key Usages the leaf must carry. mTLS peers that present their certificate as a "
                           "client need clientAuth; public CAs stopped issuing it in 2026.",
            # The API server defaults a policy to serverAuth; `certpolicy check` without a policy requires none.
            "default": ["serverAuth"],
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "enum": list(EKU_BY_NAME)},
        },
        flag=Flag("--require-eku", "required EKU: serverAuth, clientAuth, ...; repeatable or comma-separated",
                  "USAGE", split=True))
    allowed_dns_names: tuple[str, ...] = knob(
        (), key="allowedDNSNames", parse=_patterns, dump=list,
        schema={
            "type": "array",
            "maxItems": 512,
            "description": 'Patterns every DNS SAN must match. "*" matches exactly one label (RFC 6125), so '
                           '"*.uat.example.com" allows "a.uat.example.com" but not "a.b.uat.example.com". Empty '
                           "allows any name.",
            "items": {"type": "string", "maxLength": 253,
                      "pattern": r"^(\*\.)?([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?\.)*[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$"},
        },
        flag=Flag("--allow-dns", "allowed DNS SAN pattern ('*' = one label); repeatable", "PATTERN"))
    required_dns_names: tuple[str, ...] = knob(
        (), key="requiredDNSNames", parse=_patterns, dump=list,
        schema={
            "type": "array",
            "maxItems": 512,
            "description": "DNS names that must each be present as a SAN.",
            "items": {"type": "string", "minLength": 1, "maxLength": 253},
        },
        flag=Flag("--require-dns", "DNS name the certificate must cover; repeatable", "NAME"))
    allowed_ip_ranges: tuple[IPNetwork, ...] = knob(
        (), key="allowedIPRanges", parse=_ranges, dump=_strs,
        schema={
            "type": "array",
            "maxItems": 256,
            "description": "CIDR ranges every IP SAN must fall in. Empty allows any address.",
            "items": {"type": "string", "maxLength": 64, "x-kubernetes-validations": [
                {"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.0.0.0/8 or fd00::/8"}]},
        },
        flag=Flag("--allow-ip-range", "allowed IP SAN range; repeatable", "CIDR", split=True))
    required_ip_addresses: tuple[IPAddress, ...] = knob(
        (), key="requiredIPAddresses", parse=_addresses, dump=_strs,
        schema={
            "type": "array",
            "maxItems": 256,
            "description": "IP addresses that must each be present as a SAN.",
            "items": {"type": "string", "maxLength": 64, "x-kubernetes-validations": [
                {"rule": "isIP(self)", "message": "must be an IPv4 or IPv6 address"}]},
        },
        flag=Flag("--require-ip", "IP address the certificate must carry; repeatable", "ADDRESS", split=True))
    require_san: bool = knob(
        True, key="requireSAN", parse=_flag,
        schema={
            "type": "boolean",
            "default": True,
            "description": "A certificate with no SAN at all (CN only) is a finding; clients check SANs, not the CN.",
        },
        flag=Flag("--require-san", "require a subjectAltName (default: yes)"))
    warning_before: dt.timedelta = knob(
        DEFAULT_WARNING_BEFORE, key="expiry.warningBefore", parse=_duration, dump=format_duration,
        schema={
            "type": "string",
            "default": "720h",
            "description": "An ExpiringSoon Warning when less than this remains.",
            "maxLength": 32,
            "x-kubernetes-validations": _DURATION_RULES,
        },
        flag=Flag("--warn-before", "warn when a certificate expires within this (Go duration, default 720h)", "DURATION"))
    critical_before: dt.timedelta = knob(
        DEFAULT_CRITICAL_BEFORE, key="expiry.criticalBefore", parse=_duration, dump=format_duration,
        schema={
            "type": "string",
            "default": "168h",
            "description": "An ExpiringSoon Critical when less than this remains.",
            "maxLength": 32,
            "x-kubernetes-validations": _DURATION_RULES,
        },
        flag=Flag("--critical-before", "critical when it expires within this (default 168h)", "DURATION"))
    minimum_rsa_bits: int = knob(
        2048, key="minimumRSABits", parse=_int,
        schema={
            "type": "integer",
            "default": 2048,
            "minimum": 1024,
            "maximum": 16384,
            "description": "Smallest RSA modulus accepted, for the leaf and every CA.",
        },
        flag=Flag("--min-rsa-bits", "minimum RSA key size (default 2048)", "BITS"))
    allowed_ec_curves: tuple[str, ...] = knob(
        DEFAULT_EC_CURVES, key="allowedECCurves", parse=_curves, dump=list,
        schema={
            "type": "array",
            "maxItems": 3,
            "default": list(DEFAULT_EC_CURVES),
            "description": "Elliptic curves accepted for EC keys.",
            "items": {"type": "string", "enum": ["P-256", "P-384", "P-521"]},
        },
        flag=Flag("--allow-curve", "allowed EC curve (default P-256, P-384, P-521); repeatable", "CURVE", split=True))
    allowed_signature_hashes: tuple[str, ...] = knob(
        DEFAULT_SIGNATURE_HASHES, key="allowedSignatureHashes", parse=_hashes, dump=list,
        schema={
            "type": "array",
            "maxItems": 6,
            "default": list(DEFAULT_SIGNATURE_HASHES),
            "description": "Signature hash algorithms accepted (SHA-1 and MD5 are always findings unless listed).",
            "items": {"type": "string", "enum": ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]},
        },
        flag=Flag("--allow-hash", "allowed signature hash (default sha256, sha384, sha512); repeatable", "HASH",
                  split=True))
    require_private_key: bool = knob(
        False, key="requirePrivateKey", parse=_flag,
        schema={
            "type": "boolean",
            "default": False,
            "description": "When true, a Secret without a private key matching its certificate is a finding.",
        },
        flag=Flag("--require-key", "require a matching private key (default: no)"))
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(self._key()))

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, a) for a in _KNOB_ATTRIBUTES)

    def __hash__(self) -> int:
        return self._hash

    def to_spec(self) -> dict[str, Any]:
        """The ``spec.requirements`` mapping that parses back to these requirements."""
        return knobs.dump(self)


_KNOB_ATTRIBUTES = tuple(d.attribute for d in declared(Requirements))  # what equality and the hash see

#: Every field spec.requirements may hold: the knobs' names, then the others.
FIELDS = (*top_level_names(Requirements), *OTHER_FIELDS)


def requirements_schema_properties() -> dict[str, Any]:
    """The CRD schema of every knob of spec.requirements (what ``scripts/gen_crd.py`` writes)."""
    return schema_properties(Requirements, GROUPS)


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
    values = knobs.read(spec, Requirements, GROUPS, "spec.requirements", problems)
    _satisfiable(values, problems)
    if spec.get("trustedBy") is not None:
        truststore_selection_from_spec(spec.get("trustedBy"), "requirements.trustedBy", problems)
    _renewal_guard(spec.get("renewal"), problems)
    if problems:
        raise PolicySpecError(problems)
    return Requirements(**values)


def _satisfiable(values: Mapping[str, Any], problems: list[str]) -> None:
    """The rules between knobs: what no certificate could satisfy, or a warning never seen."""
    allowed, required = values["allowed_dns_names"], values["required_dns_names"]
    if allowed:
        for name in required:
            if not any(pattern_allows(p, name) for p in allowed):
                problems.append(f"requiredDNSNames '{name}' is not allowed by allowedDNSNames [{quoted(allowed)}]: no certificate could satisfy this policy")
    ranges = values["allowed_ip_ranges"]
    if ranges:
        for ip in values["required_ip_addresses"]:
            if not any(ip in r for r in ranges if r.version == ip.version):
                problems.append(f"requiredIPAddresses '{ip}' is outside allowedIPRanges {[str(r) for r in ranges]}: no certificate could satisfy this policy")
    warning, critical = values["warning_before"], values["critical_before"]
    if critical > warning:
        problems.append(
            f"expiry.criticalBefore ({format_duration(critical)}) is longer than expiry.warningBefore ({format_duration(warning)}): "
            "the warning would never be seen; make warningBefore the longer one"
        )


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
