"""How deeply a JSON document kiosk accepts may nest: :data:`MAX_JSON_DEPTH` levels, and the check.

Why a limit at all: deep documents break things far from where they come in. orjson refuses to
*write* past 254 levels (an entity property 252 deep once made a bulk call fail with a plain-text
500 when its rows were serialised), libjq's binding recurses in Python (a receiver event 1,000 deep
raised ``RecursionError``), and ``repr`` of a nested list recurses too. Refusing at the door, with a
4xx that names the limit, is the only place where the sender can still be told. 64 is far beyond
any real catalog entity, action input or webhook payload, and far below every recursion limit
downstream (orjson 254 on output, 1024 on input; Python's 1000), with room for the few levels
kiosk wraps around a document (a payload, a bulk row).

Depth counts containers: ``1`` and ``"x"`` are 0 deep, ``{}`` and ``[1]`` are 1, ``{"a": [1]}`` is 2.

The check runs on parsed documents (orjson first, so the bytes are known to be JSON), level by
level over containers only, iteratively: its cost is one ``type()`` test per value. Measured on
the bulk benchmark's entities (8 MB for 20,000, a busy 2-core machine): ~2,500 µs per MB, against
~5,000 µs per MB for orjson to parse the same bytes; ~1 µs for an ACR push (0.4 kB). A byte
scan that skips strings (a regex over the bytes, then a running sum over the brackets) measured
~30,000 µs per MB: ten times slower, in CPython. The benchmarks show no cost beyond their noise:
``bench.bulk_upsert --quick --engine sqlite`` ratio 0.32 before, 0.33 and 0.34 after;
``bench.receivers --quick`` (SQLite, 10 / 2,000 watches) 0.31 / 0.32 before, 0.46 / 0.45 after
(the same day, a busy machine, other changes landing too: the figures say "no slower", no more).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_JSON_DEPTH", "depth_message", "exceeds_depth", "too_deep_at"]

#: The deepest nesting of objects and arrays kiosk accepts in any JSON document it is sent.
MAX_JSON_DEPTH = 64
#: Longest path quoted in an error (keys can be long; the start of the path is what helps).
_MAX_PATH = 300


def exceeds_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON: dict, list, scalars) nests more than ``limit`` containers deep.

    Breadth first, one level at a time, keeping only the containers of each level: no recursion,
    so any depth orjson can parse is measured without touching Python's recursion limit.
    """
    kind = type(value)
    if kind is not dict and kind is not list:
        return False
    level: list[Any] = [value]
    depth = 1
    if depth > limit:
        return True
    while True:
        nested: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            nested += [v for v in items if type(v) is dict or type(v) is list]
        if not nested:
            return False
        depth += 1
        if depth > limit:
            return True
        level = nested


def too_deep_at(value: Any, limit: int = MAX_JSON_DEPTH) -> str:
    """The path (``a.b[3].c``) of the first container past ``limit`` in ``value``, "" for the root.

    Only called once :func:`exceeds_depth` said so, to name the place in the error: depth first,
    with an explicit stack, stopping at the first container that is too deep. Long paths are cut.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > limit:
            return path if len(path) <= _MAX_PATH else path[:_MAX_PATH] + "…"
        if type(node) is dict:
            entries = [(f"{path}.{key}" if path else str(key), child) for key, child in node.items()]
        else:
            entries = [(f"{path}[{index}]", child) for index, child in enumerate(node)]
        for child_path, child in reversed(entries):
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1, child_path[: _MAX_PATH + 1]))
    return ""


def depth_message(what: str, where: str = "", limit: int = MAX_JSON_DEPTH) -> str:
    """The error text for a document past the limit: what it is, where (a path, or ""), the limit."""
    at = f" (at {where})" if where else ""
    return f"{what} nests deeper than {limit} levels of objects and arrays{at}; {limit} is kiosk's limit"
