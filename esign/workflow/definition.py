"""Workflow definitions: ``workflows/<id>.toml`` read into frozen dataclasses.

A definition is validated completely when it is loaded; any problem raises
:class:`~esign.errors.DefinitionError` naming the file and the key path, e.g.
``workflows/x.toml: transitions[2].to: unknown state 'aprove'`` (list indexes
count from 0), and the app refuses to start.

The format, by example (``workflows/advisory-memo.toml`` is the reference)::

    id = "advisory-memo"            # lower case, digits and '-'
    version = 1                     # positive integer; a document keeps the version it started with
    name = { vi = "...", en = "..." }
    initial = "draft"

    [[fields]]                      # every field created in revision 0, in this order
    name = "adviser_1"              # the PDF field name
    kind = "signature"              # "signature" | "text"
    slot = "adviser"                # several fields may share a slot; defaults to the name

    [states.draft]
    name = { vi = "...", en = "..." }
    role = "officer"                # who works on the step; required unless terminal
    assignees = "one"               # "one" | "many" (parallel assignees)
    authority = ["KT.", "Q."]       # authority forms allowed when the step is delegated
    deadline = { working_days = 2 } # or { working_hours = 8 }
    terminal = false                # a terminal state has none of the keys above but name

    [[transitions]]
    action = "submit"
    from = ["draft"]                # one or more states
    to = "advise"                   # or: stay = true (the state does not change)
    roles = ["officer"]             # required: transitions are closed unless a role is named
    quorum = "one"                  # "one" | "all": all assignees of the state must fire it
    comment = "none"                # "none" | "optional" | "required"
    new_version = false             # true: a new version of the document starts at `initial`
    label = { vi = "...", en = "..." }
    signature = { field = "drafter", certify = true, stamp = "full" }

The ``signature`` table: ``field`` (a fixed signature field) or ``slot`` (the
next free field of that slot, in declaration order); ``certify`` (a
certification signature: only from the initial state); ``stamp`` ("full",
"initials" or "seal"); ``lock`` ("all", or "all_except" with ``lock_except``
naming the fields left open); ``fill`` (text fields filled in the same
revision); ``device`` ("token", "mobile" or "seal"; absent: any of the
signer's own devices).

:func:`load_registry` reads every ``*.toml`` of a folder except
``calendar*.toml`` (the working calendar lives in the same folder).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from esign.errors import DefinitionError
from esign.workflow.authority import AuthorityForm

ROLES = ("officer", "adviser", "chair", "clerk", "auditor", "admin")
ASSIGNEES = ("one", "many")
QUORUMS = ("one", "all")
COMMENTS = ("none", "optional", "required")
FIELD_KINDS = ("signature", "text")
STAMPS = ("full", "initials", "seal")
LOCKS = ("all", "all_except")
DEVICES = ("token", "mobile", "seal")

_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


# --- the definition ------------------------------------------------------------


@dataclass(frozen=True)
class Label(Mapping[str, str]):
    """A name in Vietnamese and English; reads like ``{"vi": ..., "en": ...}``."""

    vi: str
    en: str

    def __getitem__(self, language: str) -> str:
        if language == "vi":
            return self.vi
        if language == "en":
            return self.en
        raise KeyError(language)

    def __iter__(self) -> Iterator[str]:
        return iter(("vi", "en"))

    def __len__(self) -> int:
        return 2


@dataclass(frozen=True)
class Deadline:
    """How long a step may take: exactly one of working days or working hours."""

    working_days: int | None = None
    working_hours: int | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.working_days, self.working_hours) if v is not None]
        if len(given) != 1 or not all(_positive_int(v) for v in given):
            raise ValueError(
                "a deadline is one positive whole number of working_days or working_hours"
            )


@dataclass(frozen=True)
class State:
    """A step of the workflow. ``role`` is None only for terminal states."""

    key: str
    name: Label
    role: str | None = None
    assignees: str = "one"
    #: authority forms allowed when the step is delegated, in the order offered
    authority: tuple[AuthorityForm, ...] = ()
    deadline: Deadline | None = None
    terminal: bool = False


@dataclass(frozen=True)
class Field:
    """A field created in revision 0 of every document version."""

    name: str
    kind: str
    slot: str


@dataclass(frozen=True)
class SignatureStep:
    """What signing a transition means: which field, stamp, certification, lock, fill, device."""

    field: str | None = None
    slot: str | None = None
    certify: bool = False
    stamp: str = "full"
    #: None, "all" or "all_except"
    lock: str | None = None
    lock_except: tuple[str, ...] = ()
    fill: tuple[str, ...] = ()
    #: None: any of the signer's own devices
    device: str | None = None


@dataclass(frozen=True)
class Transition:
    """An action firing from ``sources`` to ``target`` (None: the state stays)."""

    action: str
    sources: frozenset[str]
    target: str | None
    roles: frozenset[str]
    #: "one" | "all" (every assignee of the state must fire it before it moves)
    quorum: str
    #: "none" | "optional" | "required"
    comment: str
    new_version: bool
    label: Label
    signature: SignatureStep | None = None


@dataclass(frozen=True)
class Definition:
    """A validated workflow definition; build it with :func:`load_definition`."""

    id: str
    version: int
    name: Label
    initial: str
    #: in the order of the file
    states: Mapping[str, State]
    transitions: tuple[Transition, ...]
    fields: tuple[Field, ...]
    #: the file it was read from, for messages
    source: str = dataclasses.field(default="", compare=False)

    def field(self, name: str) -> Field:
        """The field called ``name``; KeyError if there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def fields_in_slot(self, slot: str) -> tuple[Field, ...]:
        """The signature fields of ``slot`` in declaration order (the order they are used)."""
        return tuple(f for f in self.fields if f.slot == slot and f.kind == "signature")

    def transitions_from(self, state: str) -> tuple[Transition, ...]:
        """Every transition that may fire in ``state``, in file order."""
        return tuple(t for t in self.transitions if state in t.sources)


# --- loading -------------------------------------------------------------------


def load_definition(path: str | Path) -> Definition:
    """Read and validate one definition file; DefinitionError names the file and key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise DefinitionError(
            "%(file)s: cannot be read: %(reason)s", file=str(path), reason=e.strerror or str(e)
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise DefinitionError(
            "%(file)s: is not valid TOML: %(reason)s", file=str(path), reason=str(e)
        ) from e
    return _Reader(str(path)).definition(data)


class Registry:
    """The loaded definitions, by (id, version)."""

    def __init__(self, definitions: Iterable[Definition] = ()) -> None:
        self._by_key: dict[tuple[str, int], Definition] = {}
        for d in definitions:
            other = self._by_key.get((d.id, d.version))
            if other is not None:
                raise DefinitionError(
                    "%(file)s: version: workflow %(id)s version %(version)s is already defined in %(other)s",
                    file=d.source,
                    id=d.id,
                    version=d.version,
                    other=other.source,
                )
            self._by_key[(d.id, d.version)] = d

    def get(self, id: str, version: int) -> Definition:
        """The definition a document started with; DefinitionError if it is not installed."""
        try:
            return self._by_key[(id, version)]
        except KeyError:
            raise DefinitionError(
                "Workflow %(id)s version %(version)s is not installed on this server",
                id=id,
                version=version,
            ) from None

    def latest(self, id: str) -> Definition:
        """The highest version of ``id``, for new documents."""
        versions = [d for (i, _), d in self._by_key.items() if i == id]
        if not versions:
            raise DefinitionError("Workflow %(id)s is not installed on this server", id=id)
        return max(versions, key=lambda d: d.version)

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted({i for i, _ in self._by_key}))

    def __iter__(self) -> Iterator[Definition]:
        return iter([self._by_key[k] for k in sorted(self._by_key)])

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key


def load_registry(folder: str | Path) -> Registry:
    """Every definition in ``folder`` (``*.toml`` but ``calendar*.toml``); refuses duplicates."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DefinitionError(
            "%(file)s: the folder of workflow definitions does not exist", file=str(folder)
        )
    files = sorted(p for p in folder.glob("*.toml") if not p.name.startswith("calendar"))
    if not files:
        raise DefinitionError(
            "%(file)s: the folder holds no workflow definition (*.toml)", file=str(folder)
        )
    return Registry(load_definition(p) for p in files)


# --- validation ----------------------------------------------------------------


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


class _Reader:
    """Turns parsed TOML into a Definition, failing on the first problem with its key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, *args: object) -> NoReturn:
        raise DefinitionError(
            "%(file)s: %(key)s: %(problem)s",
            file=self.source,
            key=key,
            problem=problem % args if args else problem,
        )

    # -- primitive checks

    def keys(
        self, table: object, key: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        where = key or "top level"
        if not isinstance(table, dict):
            self.fail(where, "expected a table")
        allowed = tuple(allowed)
        for name in table:
            if name not in allowed:
                self.fail(_join(key, name), "unknown key (expected one of %s)", ", ".join(allowed))
        for name in required:
            if name not in table:
                self.fail(_join(key, name), "missing")
        return table

    def string(self, value: object, key: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "expected a non-empty string")
        if pattern is not None and not pattern.match(value):
            self.fail(key, "%r is not a valid name (%s)", value, _describe(pattern))
        return value

    def choice(self, value: object, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.fail(key, "%r is not one of %s", value, ", ".join(choices))
        return str(value)

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, "expected true or false")
        return value

    def strings(self, value: object, key: str, *, nonempty: bool = False) -> list[str]:
        if not isinstance(value, list):
            self.fail(key, "expected a list")
        if nonempty and not value:
            self.fail(key, "must not be empty")
        seen: set[str] = set()
        for i, item in enumerate(value):
            self.string(item, f"{key}[{i}]")
            if item in seen:
                self.fail(f"{key}[{i}]", "%r is listed twice", item)
            seen.add(item)
        return value

    def label(self, value: object, key: str) -> Label:
        table = self.keys(value, key, ("vi", "en"), ("vi", "en"))
        return Label(
            vi=self.string(table["vi"], f"{key}.vi"), en=self.string(table["en"], f"{key}.en")
        )

    # -- the parts

    def definition(self, data: dict[str, Any]) -> Definition:
        self.keys(
            data,
            "",
            ("id", "version", "name", "initial", "fields", "states", "transitions"),
            ("id", "version", "name", "initial", "states", "transitions"),
        )
        id_ = self.string(data["id"], "id", _ID)
        if not _positive_int(data["version"]):
            self.fail("version", "expected a positive whole number, not %r", data["version"])
        name = self.label(data["name"], "name")
        fields = self.fields(data.get("fields", []))
        states = self.states(data["states"])
        initial = self.string(data["initial"], "initial")
        if initial not in states:
            self.fail("initial", "unknown state %r", initial)
        if states[initial].terminal:
            self.fail("initial", "the initial state %r is terminal", initial)
        transitions = self.transitions(data["transitions"], states, fields, initial)
        self.graph(states, transitions, initial)
        return Definition(
            id=id_,
            version=data["version"],
            name=name,
            initial=initial,
            states=MappingProxyType(states),
            transitions=transitions,
            fields=fields,
            source=self.source,
        )

    def fields(self, value: object) -> tuple[Field, ...]:
        if not isinstance(value, list):
            self.fail("fields", "expected an array of tables ([[fields]])")
        out: list[Field] = []
        for i, raw in enumerate(value):
            key = f"fields[{i}]"
            table = self.keys(raw, key, ("name", "kind", "slot"), ("name", "kind"))
            name = self.string(table["name"], f"{key}.name", _NAME)
            if any(f.name == name for f in out):
                self.fail(f"{key}.name", "field %r is declared twice", name)
            kind = self.choice(table["kind"], f"{key}.kind", FIELD_KINDS)
            slot = self.string(table["slot"], f"{key}.slot", _NAME) if "slot" in table else name
            out.append(Field(name=name, kind=kind, slot=slot))
        return tuple(out)

    def states(self, value: object) -> dict[str, State]:
        if not isinstance(value, dict) or not value:
            self.fail("states", "expected at least one [states.<name>] table")
        out: dict[str, State] = {}
        for state_key, raw in value.items():
            key = f"states.{state_key}"
            self.string(state_key, key, _NAME)
            table = self.keys(
                raw,
                key,
                ("name", "role", "assignees", "authority", "deadline", "terminal"),
                ("name",),
            )
            name = self.label(table["name"], f"{key}.name")
            terminal = self.boolean(table.get("terminal", False), f"{key}.terminal")
            if terminal:
                for extra in ("role", "assignees", "authority", "deadline"):
                    if extra in table:
                        self.fail(f"{key}.{extra}", "a terminal state has no %s", extra)
                out[state_key] = State(key=state_key, name=name, terminal=True)
                continue
            if "role" not in table:
                self.fail(
                    f"{key}.role",
                    "missing: a state that is not terminal needs the role that works on it",
                )
            role = self.choice(table["role"], f"{key}.role", ROLES)
            assignees = self.choice(table.get("assignees", "one"), f"{key}.assignees", ASSIGNEES)
            forms = self.authority(table.get("authority", []), f"{key}.authority")
            deadline = (
                self.deadline(table["deadline"], f"{key}.deadline") if "deadline" in table else None
            )
            out[state_key] = State(
                key=state_key,
                name=name,
                role=role,
                assignees=assignees,
                authority=forms,
                deadline=deadline,
            )
        return out

    def authority(self, value: object, key: str) -> tuple[AuthorityForm, ...]:
        allowed = tuple(f.value for f in AuthorityForm)
        forms = []
        for i, item in enumerate(self.strings(value, key)):
            forms.append(AuthorityForm(self.choice(item, f"{key}[{i}]", allowed)))
        return tuple(forms)

    def deadline(self, value: object, key: str) -> Deadline:
        table = self.keys(value, key, ("working_days", "working_hours"))
        if len(table) != 1:
            self.fail(key, "give exactly one of working_days or working_hours")
        ((unit, amount),) = table.items()
        if not _positive_int(amount):
            self.fail(f"{key}.{unit}", "expected a positive whole number, not %r", amount)
        return Deadline(**{unit: amount})

    def transitions(
        self, value: object, states: dict[str, State], fields: tuple[Field, ...], initial: str
    ) -> tuple[Transition, ...]:
        if not isinstance(value, list) or not value:
            self.fail("transitions", "expected at least one [[transitions]] table")
        out: list[Transition] = []
        seen: dict[tuple[str, str], int] = {}
        for i, raw in enumerate(value):
            key = f"transitions[{i}]"
            table = self.keys(
                raw,
                key,
                (
                    "action",
                    "from",
                    "to",
                    "stay",
                    "roles",
                    "quorum",
                    "comment",
                    "new_version",
                    "label",
                    "signature",
                ),
                ("action", "from", "label"),
            )
            action = self.string(table["action"], f"{key}.action", _NAME)
            sources = self.strings(table["from"], f"{key}.from", nonempty=True)
            for j, source in enumerate(sources):
                if source not in states:
                    self.fail(f"{key}.from[{j}]", "unknown state %r", source)
                if states[source].terminal:
                    self.fail(
                        f"{key}.from[{j}]", "state %r is terminal: nothing may fire from it", source
                    )
                if (action, source) in seen:
                    self.fail(
                        f"{key}.from[{j}]",
                        "action %r from state %r is already defined in transitions[%d]",
                        action,
                        source,
                        seen[(action, source)],
                    )
                seen[(action, source)] = i
            stay = self.boolean(table.get("stay", False), f"{key}.stay")
            if stay == ("to" in table):
                self.fail(key, 'give either to = "<state>" or stay = true')
            target = None
            if not stay:
                target = self.string(table["to"], f"{key}.to")
                if target not in states:
                    self.fail(f"{key}.to", "unknown state %r", target)
            if "roles" not in table:
                self.fail(f"{key}.roles", "missing: name the roles that may fire this action")
            roles = self.strings(table["roles"], f"{key}.roles", nonempty=True)
            for j, role in enumerate(roles):
                self.choice(role, f"{key}.roles[{j}]", ROLES)
            quorum = self.choice(table.get("quorum", "one"), f"{key}.quorum", QUORUMS)
            if quorum == "all":
                if target is None:
                    self.fail(f"{key}.quorum", 'quorum = "all" needs a target state (to)')
                for source in sources:
                    if states[source].assignees != "many":
                        self.fail(
                            f"{key}.quorum",
                            'quorum = "all" needs assignees = "many" in state %r',
                            source,
                        )
            comment = self.choice(table.get("comment", "none"), f"{key}.comment", COMMENTS)
            new_version = self.boolean(table.get("new_version", False), f"{key}.new_version")
            if new_version and target != initial:
                self.fail(
                    f"{key}.new_version",
                    "a new version starts in the initial state %r: set to = %r",
                    initial,
                    initial,
                )
            label = self.label(table["label"], f"{key}.label")
            signature = None
            if "signature" in table:
                signature = self.signature(
                    table["signature"], f"{key}.signature", fields, sources, initial
                )
            out.append(
                Transition(
                    action=action,
                    sources=frozenset(sources),
                    target=target,
                    roles=frozenset(roles),
                    label=label,
                    quorum=quorum,
                    comment=comment,
                    new_version=new_version,
                    signature=signature,
                )
            )
        return tuple(out)

    def signature(
        self, value: object, key: str, fields: tuple[Field, ...], sources: list[str], initial: str
    ) -> SignatureStep:
        table = self.keys(
            value,
            key,
            ("field", "slot", "certify", "stamp", "lock", "lock_except", "fill", "device"),
        )
        by_name = {f.name: f for f in fields}
        if ("field" in table) == ("slot" in table):
            self.fail(
                key,
                "give either field (a fixed signature field) or slot (the next free field of a slot)",
            )
        field_name = slot = None
        if "field" in table:
            field_name = self.string(table["field"], f"{key}.field")
            if field_name not in by_name:
                self.fail(f"{key}.field", "field %r is not declared in [[fields]]", field_name)
            if by_name[field_name].kind != "signature":
                self.fail(
                    f"{key}.field",
                    "field %r is a %s field, not a signature field",
                    field_name,
                    by_name[field_name].kind,
                )
        else:
            slot = self.string(table["slot"], f"{key}.slot")
            if not any(f.slot == slot and f.kind == "signature" for f in fields):
                self.fail(f"{key}.slot", "no signature field in [[fields]] has slot %r", slot)
        certify = self.boolean(table.get("certify", False), f"{key}.certify")
        if certify and set(sources) != {initial}:
            self.fail(
                f"{key}.certify",
                "the certification signature comes first: only from the initial state %r",
                initial,
            )
        stamp = self.choice(table.get("stamp", "full"), f"{key}.stamp", STAMPS)
        lock = self.choice(table["lock"], f"{key}.lock", LOCKS) if "lock" in table else None
        lock_except = self.strings(table.get("lock_except", []), f"{key}.lock_except")
        for j, name in enumerate(lock_except):
            if name not in by_name:
                self.fail(f"{key}.lock_except[{j}]", "field %r is not declared in [[fields]]", name)
        if lock_except and lock != "all_except":
            self.fail(f"{key}.lock_except", 'only with lock = "all_except"')
        if lock == "all_except" and not lock_except:
            self.fail(f"{key}.lock_except", 'lock = "all_except" needs the fields left open')
        fill = self.strings(table.get("fill", []), f"{key}.fill")
        for j, name in enumerate(fill):
            if name not in by_name:
                self.fail(f"{key}.fill[{j}]", "field %r is not declared in [[fields]]", name)
            if by_name[name].kind != "text":
                self.fail(
                    f"{key}.fill[{j}]",
                    "field %r is a %s field; only text fields are filled",
                    name,
                    by_name[name].kind,
                )
        device = (
            self.choice(table["device"], f"{key}.device", DEVICES) if "device" in table else None
        )
        return SignatureStep(
            field=field_name,
            slot=slot,
            certify=certify,
            stamp=stamp,
            lock=lock,
            lock_except=tuple(lock_except),
            fill=tuple(fill),
            device=device,
        )

    def graph(
        self, states: dict[str, State], transitions: tuple[Transition, ...], initial: str
    ) -> None:
        moves: dict[str, set[str]] = {s: set() for s in states}
        for t in transitions:
            if t.target is not None:
                for source in t.sources:
                    moves[source].add(t.target)
        reached = _closure({initial}, moves)
        for key, state in states.items():
            if key not in reached:
                self.fail(
                    f"states.{key}",
                    "state %r cannot be reached from the initial state %r",
                    key,
                    initial,
                )
            if state.terminal:
                continue
            leaving = [t for t in transitions if key in t.sources and t.target is not None]
            if not leaving:
                self.fail(
                    f"states.{key}", "state %r is not terminal but no transition leaves it", key
                )
            if not any(state.role in t.roles for t in leaving):
                self.fail(
                    f"states.{key}.role",
                    "no transition out of state %r may be fired by its role %r",
                    key,
                    state.role,
                )
        terminals = {k for k, s in states.items() if s.terminal}
        for key in states:
            if not terminals & _closure({key}, moves):
                self.fail(f"states.{key}", "no terminal state can be reached from state %r", key)


def _closure(start: set[str], moves: Mapping[str, set[str]]) -> set[str]:
    reached, todo = set(start), list(start)
    while todo:
        for nxt in moves[todo.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    return reached


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _describe(pattern: re.Pattern[str]) -> str:
    if pattern is _ID:
        return "lower-case letters, digits and '-'"
    return "a letter, then letters, digits and '_'"
