"""A spec knob declared once: the field of a typed value that carries its own spec name, parser,
CRD schema and ``certpolicy check`` flag.

Without this, a requirement knob lived in seven files (the dataclass field, the list of known
fields, the parser, ``to_spec``, the CRD, the check command's flags, the docs), kept in step by
hand. Here a field says everything once, in its ``dataclasses.field`` metadata (:func:`knob`),
and the rest is derived from the fields: the known names, parsing, the spec form, the CRD's
``openAPIV3Schema`` fragment (written into ``crds/`` by ``scripts/gen_crd.py``, compared by a unit
test) and the flags.

Pure: no kopf, no kubernetes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The metadata key under which a field carries its :class:`Knob`.
KNOB = "certpolicy.knob"

#: ``(knob, value as written, default, problems) -> typed value``. None as written means absent
#: (the default); a value that cannot be used appends what to change to ``problems`` and returns
#: the default, so that every problem of a spec is reported at once.
Parser = Callable[["Knob", Any, Any, list[str]], Any]


@dataclass(frozen=True)
class Flag:
    """The ``certpolicy check`` flag that replaces a knob's value. Its kind follows the field's
    default: a bool is ``--x/--no-x``, an int takes ``type=int``, a tuple is repeatable (and
    comma-separated values are split when ``split``), anything else is one string parsed like
    the spec's."""

    name: str
    help: str
    metavar: str | None = None
    split: bool = False


@dataclass(frozen=True)
class Knob:
    """One spec field: where it sits under ``spec.requirements`` (``path``), how it is parsed and
    written back, its CRD schema (description included), and its flag, if it has one."""

    path: tuple[str, ...]
    parse: Parser
    dump: Callable[[Any], Any]
    schema: Mapping[str, Any]
    flag: Flag | None = None

    @property
    def key(self) -> str:
        """The dotted name problems use: ``minimumRSABits``, ``expiry.warningBefore``."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Group:
    """An object that holds knobs (``expiry``): its own schema, without ``properties`` (those are
    its knobs'), and what a problem says when it is not a mapping."""

    schema: Mapping[str, Any]
    example: str


def knob(default: Any, *, key: str, parse: Parser, schema: Mapping[str, Any], dump: Callable[[Any], Any] = lambda v: v,
         flag: Flag | None = None) -> Any:
    """A dataclass field that is a spec knob (see the module docstring)."""
    return field(default=default, metadata={KNOB: Knob(tuple(key.split(".")), parse, dump, schema, flag)})


@dataclass(frozen=True)
class Declared:
    """One knob as a dataclass declares it: the attribute, its default and the knob."""

    attribute: str
    default: Any
    knob: Knob


def declared(cls: type) -> Iterator[Declared]:
    """The knobs of a dataclass, in field order."""
    for f in dataclasses.fields(cls):
        if KNOB in f.metadata:
            yield Declared(f.name, f.default, f.metadata[KNOB])


def top_level_names(cls: type) -> tuple[str, ...]:
    """The spec names directly under the mapping the knobs of ``cls`` are read from."""
    return tuple(dict.fromkeys(d.knob.path[0] for d in declared(cls)))


def schema_properties(cls: type, groups: Mapping[str, Group]) -> dict[str, Any]:
    """The CRD ``properties`` of the knobs of ``cls``: each knob's schema, nested knobs inside
    their group's object schema, in field order."""
    out: dict[str, Any] = {}
    for d in declared(cls):
        *outer, name = d.knob.path
        props = out
        for part in outer:
            group = props.setdefault(part, {**groups[part].schema, "properties": {}})
            props = group["properties"]
        props[name] = dict(d.knob.schema)
    return out


def read(spec: Mapping[str, Any], cls: type, groups: Mapping[str, Group], where: str,
         problems: list[str]) -> dict[str, Any]:
    """Parse every knob of ``cls`` from ``spec``: ``{attribute: typed value}``. A group that is
    not a mapping, and a field a group does not know, are problems (``where`` prefixes the
    field's path in those); unknown top-level fields are the caller's to report."""
    usable: dict[str, Mapping[str, Any]] = {}
    for name, group in groups.items():
        value = spec.get(name)
        if value is None:
            usable[name] = {}
        elif not isinstance(value, Mapping):
            problems.append(f"{name} must be a mapping like {group.example}, got {value!r}")
            usable[name] = {}
        else:
            known = [d.knob.path[1] for d in declared(cls) if d.knob.path[0] == name]
            for k in value:
                if k not in known:
                    problems.append(f"unknown field {where}.{name}.{k} (known: {', '.join(known)})")
            usable[name] = value
    values = {}
    for d in declared(cls):
        holder = usable[d.knob.path[0]] if len(d.knob.path) > 1 else spec
        values[d.attribute] = d.knob.parse(d.knob, holder.get(d.knob.path[-1]), d.default, problems)
    return values


def dump(value: Any) -> dict[str, Any]:
    """The spec mapping of a dataclass value whose fields are knobs (parses back to ``value``)."""
    out: dict[str, Any] = {}
    for d in declared(type(value)):
        *outer, name = d.knob.path
        holder = out
        for part in outer:
            holder = holder.setdefault(part, {})
        holder[name] = d.knob.dump(getattr(value, d.attribute))
    return out
