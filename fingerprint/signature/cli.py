"""`fingerprint signatures list | show | lint | test | import | new`."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import click

from fingerprint._yaml import load_located_yaml
from fingerprint.errors import InputError
from fingerprint.signature.authoring import import_signatures, new_signature
from fingerprint.signature.draft import document_placeholder_problems, placeholder_problems
from fingerprint.signature.library import (
    Signature,
    SignatureLibrary,
    default_signature_dir,
    document_problems,
    load_library,
    load_signature,
    signature_files,
)


def _repo_root(library_root: Path | None) -> Path:
    """Fixture paths in signatures are relative to the folder holding `signatures/` and `pcaps/`."""
    if library_root is not None:
        for parent in [library_root, *library_root.parents]:
            if (parent / "pcaps").is_dir():
                return parent
    return Path.cwd()


@click.group()
def signatures() -> None:
    """The censor signature library."""


@signatures.command("list")
@click.option("--signatures", "root", type=click.Path(), help="Signature file or folder.")
@click.option("--json", "as_json", is_flag=True)
def list_signatures(root: str | None, as_json: bool) -> None:
    """One line per signature: id, techniques, countries, status, title."""
    library = load_library(root)
    if as_json:
        click.echo(json.dumps([{"id": s.id, "title": s.title, "kind": s.kind,
                                "techniques": sorted(t.value for t in s.techniques),
                                "countries": list(s.countries), "status": s.status,
                                "confidence": s.confidence, "aliases": list(s.aliases)}
                               for s in library.signatures], indent=2))
        return
    for s in sorted(library.signatures, key=lambda s: s.id):
        techniques = ",".join(sorted(t.value for t in s.techniques))
        countries = ",".join(s.countries) or "-"
        click.echo(f"{s.id:40} {techniques:28} {countries:8} {s.status:12} {s.title}")
    click.echo(f"{len(library)} signatures", err=True)


@signatures.command()
@click.argument("signature_id")
@click.option("--signatures", "root", type=click.Path(), help="Signature file or folder.")
def show(signature_id: str, root: str | None) -> None:
    """Print one signature's file (by id or alias)."""
    library = load_library(root)
    sig = library.get(signature_id)
    if sig is None:
        raise click.ClickException(f"no signature {signature_id!r} (see `fingerprint signatures list`)")
    click.echo(f"# {sig.path}")
    click.echo(Path(sig.path).read_text().rstrip())


def lint_paths(root: Path) -> tuple[list[Signature], list[str]]:
    """Every problem of every file (not only the first file's)."""
    problems: list[str] = []
    loaded: list[Signature] = []
    for path in signature_files(root):
        try:
            loaded.append(load_signature(path))
        except InputError as exc:
            problems.extend(_all_problems(path) or [str(exc)])
    base = _repo_root(root)
    ids: dict[str, str] = {}
    rules: dict[str, list[Signature]] = defaultdict(list)
    for sig in loaded:
        if sig.id in ids:
            problems.append(f"{_where(sig, 'id')}: duplicate id {sig.id!r} (also in {ids[sig.id]})")
        ids[sig.id] = sig.path
        key = json.dumps([sorted(t.value for t in sig.techniques), sig.data["match"]], sort_keys=True)
        rules[key].append(sig)
        for kind, refs in (("positive", sig.positive_fixtures), ("negative", sig.negative_fixtures)):
            for i, ref in enumerate(refs):
                if not (base / ref).is_dir():
                    problems.append(f"{_where(sig, 'fixtures', kind, i)}: fixture folder {ref!r} not found")
        if not any(r.get("source", "").strip() for r in sig.references):
            problems.append(f"{_where(sig, 'references')}: cites no source")
        problems.extend(placeholder_problems(sig))
    for twins in rules.values():
        if len(twins) > 1:
            names = ", ".join(sorted(s.id for s in twins))
            for sig in twins:
                problems.append(f"{_where(sig, 'match')}: signatures {names} have the same match rule "
                                f"(overlapping twins)")
    return loaded, problems


def _all_problems(path: Path) -> list[str]:
    """Every problem of a file that did not load (loading names the first only)."""
    try:
        doc = load_located_yaml(path)
    except InputError:
        return []  # not YAML: the load error says it
    return [*document_problems(doc), *document_placeholder_problems(doc)]


def _where(sig: Signature, *key: str | int) -> str:
    """`file:line` of a key of a signature that loaded (read again: only for problems)."""
    line = load_located_yaml(sig.path).line_of(key)
    return f"{sig.path}:{line}" if line is not None else sig.path


@signatures.command()
@click.argument("path", required=False, type=click.Path())
def lint(path: str | None) -> None:
    """Validate signature files: schema, id = file name, fixtures exist, sources cited."""
    root = Path(path) if path else default_signature_dir()
    if root is None or not root.exists():
        raise click.ClickException(f"{path or 'signatures/'}: no such file or folder")
    loaded, problems = lint_paths(root)
    for line in problems:
        click.echo(line)
    click.echo(f"{len(loaded)} signatures, {len(problems)} problems", err=True)
    if problems:
        sys.exit(1)


@signatures.command("test")
@click.argument("path", required=False, type=click.Path())
def test_signatures(path: str | None) -> None:
    """Replay every signature's fixtures: positives must match it, negatives must not."""
    from fingerprint.testing.fixtures import resolve_fixture

    root = Path(path) if path else default_signature_dir()
    if root is None:
        raise click.ClickException("no signature library found")
    library = load_library(root)
    # Matching is done with the whole library loaded, as in a real analysis.
    full = load_library(None) if path else library
    merged = SignatureLibrary(
        list({s.id: s for s in [*full.signatures, *library.signatures]}.values()), root)
    base = _repo_root(root)
    failures = 0
    cache: dict[str, set[str]] = {}

    def matched_ids(ref: str) -> set[str]:
        if ref not in cache:
            fixture = resolve_fixture(ref, base)
            result, _report = fixture.analyze(merged)
            ids: set[str] = set()
            # A false-positive signature "matches" a capture by suppressing a finding.
            for finding in [*result.verdicts.findings, *result.verdicts.suppressed]:
                ids.update(finding.signatures)
            cache[ref] = ids
        return cache[ref]

    for sig in library.signatures:
        checks = [(ref, True) for ref in sig.positive_fixtures]
        checks += [(ref, False) for ref in sig.negative_fixtures]
        for ref, must_match in checks:
            try:
                hit = sig.id in matched_ids(ref)
            except InputError as exc:
                click.echo(f"FAIL {sig.id}: {exc}")
                failures += 1
                continue
            if hit != must_match:
                failures += 1
                what = "positive fixture {} does not match" if must_match else "negative fixture {} matches"
                click.echo(f"FAIL {sig.id}: {what.format(ref)}")
    click.echo(f"{len(library)} signatures, {len(cache)} fixtures replayed, {failures} failures")
    if failures:
        sys.exit(1)


signatures.add_command(import_signatures)
signatures.add_command(new_signature)
