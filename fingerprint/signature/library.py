"""Loading, linting and applying the signature library.

Signatures live one per YAML file under `signatures/` (shipped in the wheel as
`fingerprint/_signatures`).  Loading is all-or-nothing: a malformed file is
rejected with its file and line, never partly loaded, and a library holding
one is not loaded at all (`signatures lint` lists every problem of every file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fingerprint._yaml import LocatedYaml, load_located_yaml, save_validated, validate_located
from fingerprint.errors import InputError, SignatureError
from fingerprint.model import Technique
from fingerprint.signature.fields import lookup, unknown_field_message
from fingerprint.signature.match import MatchRule, build_matcher

if TYPE_CHECKING:
    from fingerprint.analysis.findings import Finding


@dataclass(frozen=True)
class Signature:
    id: str
    title: str
    kind: str
    techniques: frozenset[Technique]
    status: str
    confidence: float
    rule: MatchRule
    path: str
    countries: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    references: tuple[dict[str, str], ...] = ()
    positive_fixtures: tuple[str, ...] = ()
    negative_fixtures: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_false_positive(self) -> bool:
        return self.kind == "false-positive"

    def matches(self, finding: Finding) -> bool:
        if finding.technique not in self.techniques:
            return False
        return self.rule.evaluate(finding.context, evidence_fields(finding))


def evidence_fields(finding: Finding) -> dict[str, list[dict[str, Any]]]:
    injected = [e.fields for e in finding.evidence if e.role == "injected"]
    responses = [e.fields for e in finding.evidence if e.role in ("injected", "response", "genuine")
                 and e.role != "genuine"]
    return {"injected": injected, "responses": responses,
            "all": [e.fields for e in finding.evidence]}


@cache
def signature_schema() -> dict[str, Any]:
    text = resources.files("fingerprint").joinpath("schemas/signature.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def unknown_fields(doc: LocatedYaml) -> list[tuple[str, int | None]]:
    """(message, line) for every matcher field the registry does not know.

    Checked before the schema (which refuses them too) so that the message names the
    closest known field instead of quoting the whole list."""
    match = doc.data.get("match") if isinstance(doc.data, dict) else None
    matchers = match.get("matchers") if isinstance(match, dict) else None
    out = []
    for i, spec in enumerate(matchers if isinstance(matchers, list) else []):
        name = spec.get("field") if isinstance(spec, dict) else None
        if isinstance(name, str) and lookup(name) is None:
            out.append((f"match/matchers/{i}/field: {unknown_field_message(name)}",
                        doc.line_of(["match", "matchers", i, "field"])))
    return out


def document_problems(doc: LocatedYaml) -> list[str]:
    """Every problem of one signature document, `file:line: message` each, in line order.

    Loading stops at the first problem; lint uses this to report them all at once (a
    fresh `signatures new` draft has several)."""
    import jsonschema

    found: list[tuple[int, str]] = []

    def add(message: str, line: int | None) -> None:
        found.append((line or 0, f"{doc.path}:{line}: {message}" if line else f"{doc.path}: {message}"))

    unknown = unknown_fields(doc)
    for message, line in unknown:
        add(message, line)
    unknown_paths = {message.split(":", 1)[0] for message, _line in unknown}
    validator = jsonschema.Draft202012Validator(signature_schema())
    for error in validator.iter_errors(doc.data):
        path = list(error.absolute_path)
        location = "/".join(str(p) for p in path) or "(top level)"
        if location in unknown_paths:
            continue  # named above, with the closest known field
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for key in (k for k in error.instance if k not in known):
                add(f"{location}: unexpected key {key!r}", doc.line_of([*path, key]))
            continue
        add(f"{location}: {error.message}", doc.line_of(path))
    data = doc.data if isinstance(doc.data, dict) else {}
    stem = Path(doc.path).name.removesuffix(".yaml").removesuffix(".yml")
    if isinstance(data.get("id"), str) and data["id"] != stem:
        add(f"id {data['id']!r} differs from the file name {stem!r}", doc.line_of(["id"]))
    match = data.get("match")
    matchers = match.get("matchers") if isinstance(match, dict) else None
    for i, spec in enumerate(matchers if isinstance(matchers, list) else []):
        if not isinstance(spec, dict) or f"match/matchers/{i}/field" in unknown_paths:
            continue
        try:
            build_matcher(spec)
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ValueError):  # schema errors above cover missing keys
                add(f"match/matchers/{i}: {exc}", doc.line_of(["match", "matchers", i]))
    return [text for _line, text in sorted(found, key=lambda item: item[0])]


def signature_from_document(doc: LocatedYaml) -> Signature:
    for message, line in unknown_fields(doc)[:1]:
        raise SignatureError(doc.path, message, line)
    validate_located(doc, signature_schema(), SignatureError)
    data = doc.data
    stem = Path(doc.path).name.removesuffix(".yaml").removesuffix(".yml")
    if data["id"] != stem:
        raise SignatureError(doc.path, f"id {data['id']!r} differs from the file name {stem!r}",
                             doc.line_of(["id"]))
    confidence = data.get("confidence", 0.5)
    if not 0 <= confidence <= 1:  # NaN passes the schema's minimum and maximum
        raise SignatureError(doc.path, f"confidence: {confidence!r} is not a number from 0 to 1",
                             doc.line_of(["confidence"]))
    matchers = []
    for i, spec in enumerate(data["match"]["matchers"]):
        try:
            matchers.append(build_matcher(spec))
        except ValueError as exc:
            raise SignatureError(doc.path, f"match/matchers/{i}: {exc}",
                                 doc.line_of(["match", "matchers", i])) from None
    return Signature(
        id=data["id"], title=data["title"], kind=data["kind"],
        techniques=frozenset(Technique(t) for t in data["techniques"]),
        status=data["status"], confidence=float(data.get("confidence", 0.5)),
        rule=MatchRule(data["match"].get("condition", "all"), tuple(matchers)),
        path=doc.path, countries=tuple(data.get("countries", [])),
        aliases=tuple(data.get("aliases", [])),
        references=tuple(data["references"]),
        positive_fixtures=tuple(data["fixtures"]["positive"]),
        negative_fixtures=tuple(data["fixtures"].get("negative", [])),
        data=data,
    )


def load_signature(path: str | Path) -> Signature:
    return signature_from_document(load_located_yaml(path))


def default_signature_dir() -> Path | None:
    """The shipped library: the wheel's copy, else the checkout's `signatures/`."""
    packaged = Path(str(resources.files("fingerprint"))) / "_signatures"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "signatures"
    return checkout if checkout.is_dir() else None


def signature_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))


class SignatureLibrary:
    def __init__(self, signatures: list[Signature], root: Path | None = None) -> None:
        self.root = root
        ids: dict[str, str] = {}
        for sig in signatures:
            if sig.id in ids:
                raise SignatureError(sig.path, f"duplicate signature id {sig.id!r} (also {ids[sig.id]})")
            ids[sig.id] = sig.path
        # False-positive signatures first (Censored Planet's order), then most specific first.
        self.signatures = sorted(signatures, key=lambda s: (not s.is_false_positive, -s.confidence, s.id))

    def __len__(self) -> int:
        return len(self.signatures)

    def get(self, sig_id: str) -> Signature | None:
        return next((s for s in self.signatures if s.id == sig_id or sig_id in s.aliases), None)

    def apply(self, finding: Finding) -> bool:
        """Fill `finding.signatures`; False when a false-positive signature suppresses it."""
        matched: list[Signature] = []
        for sig in self.signatures:
            if sig.status == "deprecated" or not sig.matches(finding):
                continue
            if sig.is_false_positive:
                finding.notes.append(f"suppressed by false-positive signature {sig.id}")
                finding.signatures = [sig.id]
                return False
            matched.append(sig)
        finding.signatures = [s.id for s in matched]
        if matched:
            best = matched[0].confidence
            finding.signature_confidence = best
            # A specific known-censor match raises confidence a little; never to certainty.
            finding.confidence = round(min(0.99, finding.confidence + 0.08 * best), 2)
        return True


def load_library(root: str | Path | None = None) -> SignatureLibrary:
    """Load every signature under `root` (default: the shipped library); the first
    malformed file stops the load with a SignatureError naming its file and line."""
    base = Path(root) if root is not None else default_signature_dir()
    if base is None:
        return SignatureLibrary([], None)
    if not base.exists():
        raise InputError(str(base), "no such signature file or folder")
    signatures = [load_signature(p) for p in signature_files(base)]
    save_validated()
    return SignatureLibrary(signatures, base)
