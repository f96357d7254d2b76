"""Config dataclasses from flat settings: the one argv/``key=value`` -> config path.

Run configs nest the library's own dataclasses (``Sampling``, ``RewardConfig``, ``PCTRConfig``)
instead of re-declaring their fields. People still think in flat names (``max_new_tokens=64``,
``--set alpha=5``), so :func:`override` resolves each flat key to the one field that holds it:
a field of the config itself, or a field of exactly one nested dataclass (``sampling.max_new_tokens``
may also be spelled out with a dot). Strings from a command line are converted to the field's type.

* :func:`override` -- ``dataclasses.replace`` that understands flat and dotted keys;
* :func:`parse_assignments` -- ``["alpha=5", "sampling.top_p=0.9"]`` -> ``{key: text}``;
* :func:`given` -- the command-line options a user actually gave (``argparse`` default None);
* :func:`to_dict` / :func:`from_dict` -- JSON round trip of a nested config (run records, resume).
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Mapping, Sequence


def _fields(cls_or_obj) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls_or_obj) if f.init}


def _nested(obj) -> dict[str, Any]:
    """Fields of ``obj`` whose current value is itself a dataclass instance."""
    return {name: getattr(obj, name) for name in _fields(obj)
            if dataclasses.is_dataclass(getattr(obj, name)) and not isinstance(getattr(obj, name), type)}


def _field_type(obj, name: str):
    hints = typing.get_type_hints(type(obj))
    return hints.get(name, Any)


def _coerce(value: Any, annotation, current: Any) -> Any:
    """``value`` converted to the field's type when it is a string from a command line."""
    if not isinstance(value, str):
        if isinstance(current, tuple) and isinstance(value, list):
            return tuple(value)
        return value
    text = value.strip()
    if text.lower() in ("none", "null") and (current is None or type(None) in typing.get_args(annotation)):
        return None
    kind = type(current) if current is not None else next(
        (a for a in typing.get_args(annotation) if a is not type(None)), annotation)
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if kind in (int, float):
        try:
            return float(text) if kind is float else int(text)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind is tuple or isinstance(current, tuple):
        return tuple(t.strip() for t in text.split(",") if t.strip())
    if kind in (dict, list) or isinstance(current, (dict, list)):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"expected JSON, got {value!r}: {err}") from None
    return text


def override(cfg, changes: Mapping[str, Any] | None = None, **more: Any):
    """A copy of the dataclass ``cfg`` with ``changes`` applied (flat, dotted or nested keys).

    Raises ``ValueError`` naming the key when it matches no field, or fields of several nested
    configs (then spell it with a dot)."""
    changes = {**(changes or {}), **more}
    top: dict[str, Any] = {}
    nested_changes: dict[str, dict[str, Any]] = {}
    own, nested = _fields(cfg), _nested(cfg)
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            if head not in nested:
                raise ValueError(f"{type(cfg).__name__} has no nested config {head!r} (in {key!r})")
            nested_changes.setdefault(head, {})[rest] = value
        elif key in nested:
            if dataclasses.is_dataclass(value):
                top[key] = value
            elif isinstance(value, Mapping):
                nested_changes.setdefault(key, {}).update(value)
            else:
                raise ValueError(f"{type(cfg).__name__}.{key} is a {type(nested[key]).__name__}; set its fields "
                                 f"({key}.<field>=...) or pass a {type(nested[key]).__name__}")
        elif key in own:
            try:
                top[key] = _coerce(value, _field_type(cfg, key), getattr(cfg, key))
            except ValueError as e:
                raise ValueError(f"{type(cfg).__name__}.{key}: {e}") from None
        else:
            holders = [name for name, sub in nested.items() if key in _fields(sub)]
            if len(holders) == 1:
                nested_changes.setdefault(holders[0], {})[key] = value
            elif not holders:
                known = sorted(set(own) | {f"{n}.{f}" for n, sub in nested.items() for f in _fields(sub)})
                raise ValueError(f"unknown {type(cfg).__name__} setting {key!r}; known: {', '.join(known)}")
            else:
                raise ValueError(f"{key!r} is ambiguous in {type(cfg).__name__}: spell it as one of "
                                 + ", ".join(f"{h}.{key}" for h in holders))
    for name, sub_changes in nested_changes.items():
        top[name] = override(top.get(name, nested[name]), sub_changes)
    return dataclasses.replace(cfg, **top)


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{key: value}`` (values stay text; :func:`override` converts)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        out[key.strip()] = value
    return out


def given(args, keys: Sequence[str]) -> dict[str, Any]:
    """``{key: getattr(args, key)}`` for the ``keys`` whose option was given (not None)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def to_dict(cfg) -> dict[str, Any]:
    """``dataclasses.asdict`` (nested configs become nested dicts; tuples stay JSON lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls, data: Mapping[str, Any]):
    """Rebuild ``cls`` from :func:`to_dict` output (nested dicts become their dataclasses). Keys
    that are not fields of ``cls`` (e.g. a record written before a field moved into a nested
    config) are applied with :func:`override`, so they still land in the field that holds them."""
    default = cls()
    kwargs = {}
    own = _fields(cls)
    for name, f in own.items():
        if name not in data:
            continue
        value, current = data[name], getattr(default, name)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = from_dict(type(current), value)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    rest = {k: v for k, v in data.items() if k not in own}
    return override(cls(**kwargs), rest) if rest else cls(**kwargs)
