"""Matcher semantics.

A matcher reads one field of the registry (`fields.py`).  Packet fields (ip.*,
tcp.*, timing.*, a response's dns.*) are read from the finding's evidence
packets: by default the injected ones, else the responses; `quantifier: all`
requires every such packet to match, `count: N` at least N of them.  Finding
and vantage fields are read from the finding itself (trigger.sni,
injected.count, http.header.location, probe.cc, ...); a field registered for
both is read from the finding unless `packets:` is given.  List values
(dns.answer) match when any element matches (all with `quantifier: all`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import re2

from fingerprint.signature.fields import is_packet_field, lookup, unknown_field_message

MAX_MATCH_INPUT = 65536
"""Regexes and substring tests see at most this many characters."""
MAX_PATTERN_LENGTH = 1000

_MISSING = object()


@cache
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value[:MAX_MATCH_INPUT].decode("latin-1")
    return str(value)[:MAX_MATCH_INPUT]


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value[:MAX_MATCH_INPUT]
    return str(value)[:MAX_MATCH_INPUT].encode("utf-8", "replace")


@dataclass(frozen=True)
class Matcher:
    field: str
    op: str
    value: Any = None
    values: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    packets: str | None = None
    quantifier: str = "any"
    count: int | None = None
    negate: bool = False
    pattern: Any = None
    """A compiled RE2 pattern (linear time in the input, whatever the pattern)."""
    from_packets: bool = False
    """The field can be read from evidence packets (the registry says so)."""

    def _scalar(self, value: Any) -> bool:
        op = self.op
        if op == "exists":
            return True
        if op == "equals":
            if isinstance(self.value, bool) or isinstance(value, bool):
                return bool(value) == bool(self.value) and isinstance(value, bool) == isinstance(self.value, bool)
            if isinstance(value, int | float) and isinstance(self.value, int | float):
                return value == self.value
            return _as_text(value).lower() == str(self.value).lower()
        if op == "one_of":
            return any(Matcher(self.field, "equals", v)._scalar(value) for v in self.values)
        if op == "prefix":
            return _as_text(value).lower().startswith(str(self.value).lower())
        if op == "suffix":
            return _as_text(value).lower().endswith(str(self.value).lower())
        if op == "contains":
            return str(self.value).lower() in _as_text(value).lower()
        if op == "regex":
            assert self.pattern is not None
            # RE2 takes UTF-8: lone surrogates (never in decoded packet text, but possible
            # in a context value) become '?'.
            text = _as_text(value).encode("utf-8", "replace").decode("utf-8")
            return self.pattern.search(text) is not None
        if op == "cidr":
            try:
                ip = ipaddress.ip_address(str(value))
            except ValueError:
                return False
            return any(ip.version == _network(c).version and ip in _network(c) for c in self.values)
        if op == "range":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return ((self.minimum is None or value >= self.minimum)
                    and (self.maximum is None or value <= self.maximum))
        if op == "bytes_equals":
            return _as_bytes(value) == bytes.fromhex(str(self.value))
        if op == "bytes_contains":
            return bytes.fromhex(str(self.value)) in _as_bytes(value)
        raise ValueError(f"unknown op {op}")

    def _value(self, value: Any) -> bool:
        if value is _MISSING or value is None:
            return False
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if not items:
                return False
            if self.quantifier == "all":
                return all(self._scalar(v) for v in items)
            return any(self._scalar(v) for v in items)
        return self._scalar(value)

    def evaluate(self, context: dict[str, Any], packets: dict[str, list[dict[str, Any]]]) -> bool:
        if self.from_packets and (self.packets or self.field not in context):
            chosen = packets.get(self.packets or "injected") or (
                packets.get("responses", []) if self.packets is None else [])
            hits = [self._value(p.get(self.field, _MISSING)) for p in chosen]
            if self.count is not None:
                result = sum(hits) >= self.count
            elif self.quantifier == "all":
                result = bool(hits) and all(hits)
            else:
                result = any(hits)
        else:
            result = self._value(context.get(self.field, _MISSING))
        return result != self.negate


@dataclass(frozen=True)
class MatchRule:
    condition: str
    matchers: tuple[Matcher, ...]

    def evaluate(self, context: dict[str, Any], packets: dict[str, list[dict[str, Any]]]) -> bool:
        combine: Callable[[Any], bool] = all if self.condition == "all" else any
        return combine(m.evaluate(context, packets) for m in self.matchers)


# Nested quantifiers such as (a+)+ backtrack exponentially in backtracking engines.  RE2
# runs them in linear time, but a signature should work with other tools' engines too, so
# the shape is still refused at load.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")
# Alternation under repetition, (a|a)*b: exponential there too when the branches overlap.
_REPEATED_ALTERNATION = re.compile(r"\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)[+*{]")


def _re2_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the error is raised to the caller, not printed by RE2
    options.max_mem = 8 << 20  # per pattern; bounds RE2's automata for huge repetitions
    return options


def compile_pattern(pattern: str) -> Any:
    """Compile a signature regex with RE2 (RE2 syntax: no backreferences or lookaround),
    refusing shapes with catastrophic backtracking in other engines."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError("nested quantifier (catastrophic backtracking), e.g. (a+)+")
    if _REPEATED_ALTERNATION.search(pattern):
        raise ValueError("repeated alternation (catastrophic backtracking), e.g. (a|a)*; "
                         "use a character class or one repeated branch")
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        raise ValueError(f"invalid regular expression: {detail}") from None


def build_matcher(spec: dict[str, Any]) -> Matcher:
    """Build a matcher from its (schema-valid) YAML mapping; ValueError on bad values."""
    if lookup(spec["field"]) is None:
        raise ValueError(unknown_field_message(spec["field"]))
    op = spec["op"]
    value = spec.get("value")
    values = tuple(spec.get("values", ()))
    needs_value = {"equals", "prefix", "suffix", "contains", "regex", "bytes_equals", "bytes_contains"}
    if op in needs_value and value is None:
        raise ValueError(f"op {op} needs `value`")
    if op in ("one_of", "cidr") and not values:
        raise ValueError(f"op {op} needs `values`")
    if op == "range" and spec.get("min") is None and spec.get("max") is None:
        raise ValueError("op range needs `min` and/or `max`")
    pattern = compile_pattern(str(value)) if op == "regex" else None
    if op == "cidr":
        for cidr in values:
            try:
                _network(str(cidr))
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR") from None
    if op in ("bytes_equals", "bytes_contains"):
        try:
            bytes.fromhex(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not hex bytes") from None
    return Matcher(spec["field"], op, value, values, spec.get("min"), spec.get("max"),
                   spec.get("packets"), spec.get("quantifier", "any"), spec.get("count"),
                   bool(spec.get("negate", False)), pattern, is_packet_field(spec["field"]))
