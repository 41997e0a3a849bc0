"""Bounds on what a request body may decode to, checked before any expensive work is done with it.

A body under the 3 MiB cap can still take the process down: nesting deep enough to exhaust a recursive
walker (or libyaml's composer, which crashed the process in PyYAML 6.0.3), or YAML aliases that expand a
kilobyte into gigabytes. kube refuses both (`exceeded max depth`, `excessive aliasing`); so does this.
Every walk here is iterative, so the checks themselves cannot recurse too deep.
"""

from __future__ import annotations

from typing import Any

import yaml

from shim.apiserver import errors

# kube's JSON decoder allows 10000 levels, but orjson encodes at most 254 and a stored object is wrapped a
# few levels deeper when served (lists, watch events, Tables, managedFields); every recursive walker in the
# server (validation, patches, the field manager) then stays far below Python's recursion limit.
MAX_DEPTH = 200
# what a body may grow to once decoded, counting one per value plus the characters of each string: the
# request cap, so a YAML body's aliases can at most fill what an alias-free body could have said
MAX_EXPANDED_SIZE = 3 * 1024 * 1024


def check_json_value(value: Any, what: str) -> None:
    """Refuse (400) a decoded value nested deeper than `MAX_DEPTH` or larger than `MAX_EXPANDED_SIZE`;
    `what` names the format in the message (`json`, `protobuf`, ...)."""
    problem = bounds_problem(value, MAX_EXPANDED_SIZE)
    if problem is not None:
        raise errors.bad_request(f"{what}: the request body {problem}")


def bounds_problem(value: Any, max_size: int) -> str | None:
    """What is wrong with `value` (too deep, or larger than `max_size`), or None.

    The walk stops at the first excess, so shared references (YAML aliases, a patch that copies a subtree
    many times) cost no more than the budget."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                return f"exceeded max depth of {MAX_DEPTH}"
            size += 1 + len(node)
            if isinstance(node, dict):
                size += sum(len(key) for key in node if isinstance(key, str))
                node = node.values()
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str):
            size += len(node)
        if size > max_size:
            return f"exceeded max size of {max_size} bytes"
    return None


def load_yaml(body: bytes) -> Any:
    """One YAML document as JSON values, refusing deep nesting and alias bombs before composing it.

    libyaml's event parser is a state machine (no recursion), so the events are counted first; only a body
    within bounds reaches the (recursive) composer. Timestamps stay strings and keys become strings, as
    sigs.k8s.io/yaml converts YAML to JSON."""
    _check_events(body)
    return _to_json(yaml.load(body, Loader=_Loader))


def _check_events(body: bytes) -> None:
    """Walk the event stream: depth of collections, and the size of the document with every alias expanded."""
    anchored: dict[str, int] = {}  # anchor -> size of the value it names
    open_sizes: list[tuple[str | None, int]] = []  # the collections being read: (anchor, size so far)
    expanded = 0
    for event in yaml.parse(body, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_sizes) >= MAX_DEPTH:
                raise errors.bad_request(f"yaml: the request body exceeded max depth of {MAX_DEPTH}")
            open_sizes.append((event.anchor, 1))
            added = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_sizes.pop()
            if anchor is not None:
                anchored[anchor] = size
            if open_sizes:
                parent_anchor, parent_size = open_sizes[-1]
                open_sizes[-1] = (parent_anchor, parent_size + size)
            continue
        elif isinstance(event, yaml.ScalarEvent):
            added = 1 + len(event.value)
            if event.anchor is not None:
                anchored[event.anchor] = added
        elif isinstance(event, yaml.AliasEvent):
            added = anchored.get(event.anchor or "", 1)  # an unknown anchor: the composer reports it
        else:
            continue
        expanded += added
        if expanded > MAX_EXPANDED_SIZE:
            raise errors.bad_request(
                "yaml: document contains excessive aliasing"
                if isinstance(event, yaml.AliasEvent) or anchored
                else f"yaml: the request body exceeded max size of {MAX_EXPANDED_SIZE} bytes"
            )
        if open_sizes and not isinstance(event, yaml.CollectionStartEvent):
            anchor, size = open_sizes[-1]
            open_sizes[-1] = (anchor, size + added)


def _to_json(value: Any) -> Any:
    """A copy of a composed YAML value in JSON's types (the depth is already bounded, so recursion is safe)."""
    if isinstance(value, dict):
        return {_key(key): _to_json(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(child) for child in value]
    if isinstance(value, set):  # !!set: a map whose values are all null
        return {_key(key): None for key in value}
    if isinstance(value, bytes):  # !!binary
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise errors.bad_request("yaml: a !!binary value is not UTF-8 text") from None
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        # JSON numbers beyond 64 bits decode as floats (Go's float64), as orjson does for JSON bodies
        return value if -(2**63) <= value < 2**64 else _float(value)
    return str(value)  # an explicit !!timestamp, !!set member or the like: its text


def _key(key: Any) -> str:
    if isinstance(key, bool) or key is None:
        return "true" if key is True else "false" if key is False else "null"
    if isinstance(key, str | int | float):
        return str(key)
    raise errors.bad_request(f"yaml: a mapping key must be a string or a number, not {type(key).__name__}")


def _float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise errors.bad_request("yaml: a number is out of range") from None


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading without timestamp resolution: kube keeps `2024-01-01` a string, not a date."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
