"""`fingerprint signatures import` and `fingerprint signatures new`: writing signatures."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fingerprint.errors import InputError
from fingerprint.signature.importer import (
    ImportResult,
    Origin,
    Unexpressible,
    import_rows,
    read_ooni_csv,
    row_kind,
    write_signatures,
)
from fingerprint.signature.library import (
    Signature,
    SignatureLibrary,
    default_signature_dir,
    load_library,
    load_signature,
    signature_files,
)

IMPORT_MARKER = "# Imported from ooni/blocking-fingerprints"
"""First line of every imported file: a re-run may replace such files, never hand-written ones."""


def repository_root(out_dir: Path) -> Path:
    """The folder holding `signatures/` (and `pcaps/`) for an output folder inside it."""
    resolved = out_dir.resolve()
    for parent in [resolved, *resolved.parents]:
        if parent.name == "signatures":
            return parent.parent
    return Path.cwd()


def existing_signatures(root: Path | None, exclude: Path | None) -> tuple[SignatureLibrary, list[str]]:
    """The library to check overlaps against, minus the import's own output folder.

    A file that does not load is named and left out rather than stopping the import
    (another contributor may be editing it).
    """
    loaded: list[Signature] = []
    problems: list[str] = []
    if root is None or not root.exists():
        return SignatureLibrary([]), problems
    excluded = exclude.resolve() if exclude is not None else None
    for path in signature_files(root):
        if excluded is not None and excluded in path.resolve().parents:
            continue
        try:
            loaded.append(load_signature(path))
        except InputError as exc:
            problems.append(f"warning: left out: {exc}")
    return SignatureLibrary(loaded, root), problems


def _default_out(result_kinds: set[str]) -> Path:
    family = result_kinds.pop() if len(result_kinds) == 1 else "mixed"
    return Path("signatures") / family / "ooni"


def summary(result: ImportResult, rows: int) -> str:
    merged = sum(len(i.merged) for i in result.imported)
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(result.skip_reasons().items(),
                                                           key=lambda kv: -kv[1]))
    return (f"{rows} rows: {len(result.imported)} signatures, {merged} rows merged into "
            f"them as aliases, {len(result.skipped)} skipped" + (f" ({reasons})" if reasons else ""))


@click.command("import")
@click.argument("csv_file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="Folder for the YAML files (default: signatures/<dns|http>/ooni).")
@click.option("--dry-run", is_flag=True, help="Convert and report, write nothing.")
@click.option("--commit", help="The blocking-fingerprints commit the file comes from (cited).")
@click.option("--library", "library_dir", type=click.Path(),
              help="Signatures to check overlaps against (default: the library around --out).")
@click.option("--with-fixtures", is_flag=True,
              help="Also craft the shared DNS fixture per country under pcaps/ and check each "
                   "signature matches it.")
def import_signatures(csv_file: str, out: str | None, dry_run: bool, commit: str | None,
                      library_dir: str | None, with_fixtures: bool) -> None:
    """Import an ooni/blocking-fingerprints CSV (DNS or HTTP) as one signature per row.

    Rows the signature language cannot express exactly are skipped with one line
    each; rows that repeat a pattern are merged as aliases; rows a hand-written
    signature already covers are skipped.
    """
    rows = read_ooni_csv(csv_file)
    kinds: set[str] = set()
    for row in rows:
        try:
            kinds.add(row_kind(row))
        except Unexpressible:
            continue  # reported per row by the import itself
    out_dir = Path(out) if out else _default_out(kinds)
    root = repository_root(out_dir)
    if library_dir:
        library_root: Path | None = Path(library_dir)
    elif (root / "signatures").is_dir():
        library_root = root / "signatures"
    else:
        library_root = default_signature_dir()
    existing, warnings = existing_signatures(library_root, out_dir)
    for line in warnings:
        click.echo(line, err=True)
    result = import_rows(rows, Origin(Path(csv_file).name, commit), existing)
    for line in result.lines():
        click.echo(line)
    click.echo(summary(result, len(rows)), err=True)
    if dry_run:
        return
    removed = 0
    if out_dir.is_dir():
        for old in sorted(out_dir.glob("*.yaml")):
            with open(old, encoding="utf-8", errors="replace") as handle:
                if handle.readline().startswith(IMPORT_MARKER):
                    old.unlink()
                    removed += 1
    written = write_signatures(result, out_dir)
    click.echo(f"wrote {len(written)} files to {out_dir}" +
               (f" (replacing {removed} from an earlier import)" if removed else ""), err=True)
    http = [i for i in result.imported if i.kind == "http"]
    if http and not with_fixtures:
        click.echo(f"note: {len(http)} HTTP signatures reference fixture folders under pcaps/http/: "
                   "--with-fixtures crafts them", err=True)
    if with_fixtures:
        _craft_fixtures(result, root)


def _craft_fixtures(result: ImportResult, root: Path) -> None:
    from fingerprint.catalog import load_catalog
    from fingerprint.signature.import_fixtures import (
        build_dns_fixtures,
        build_http_fixtures,
        plan_dns_fixtures,
        plan_http_fixtures,
    )

    catalog = load_catalog(None)
    plans, notes = plan_dns_fixtures(result.imported, catalog)
    http_plans, http_notes = plan_http_fixtures(result.imported, catalog)
    for line in [*notes, *http_notes]:
        click.echo(f"note: {line}", err=True)
    library, warnings = existing_signatures(root / "signatures", None)
    for line in warnings:
        click.echo(line, err=True)
    problems = build_dns_fixtures(plans, root, result.origin, catalog, library)
    http_problems, overlaps = build_http_fixtures(http_plans, root, result.origin, catalog, library)
    problems += http_problems
    for line in overlaps:
        click.echo(f"note: {line}", err=True)
    for line in problems:
        click.echo(f"FAIL {line}")
    if plans:
        click.echo(f"crafted {len(plans)} DNS fixtures under {root / 'pcaps' / 'dns'}", err=True)
    if http_plans:
        click.echo(f"crafted {len(http_plans)} HTTP fixtures under {root / 'pcaps' / 'http'}",
                   err=True)
    if problems:
        sys.exit(1)


@click.command("new")
@click.option("--from", "capture", required=True, type=click.Path(exists=True),
              help="A capture file or fixture folder.")
@click.option("--technique", help="Draft from the finding with this technique.")
@click.option("--target", help="Draft from the finding on this name or address.")
@click.option("--id", "sig_id", help="The signature id (default: a TODO placeholder).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Write the draft here.")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False),
              help="Platform catalog (default: the fixture folder's catalog.yaml, else built-in).")
@click.option("--signatures", "signatures_path", type=click.Path(),
              help="Signature library used in the analysis (default: the shipped one).")
@click.option("--ca-file", type=click.Path(dir_okay=False),
              help="Trust anchors (default: the fixture folder's ca.pem, else the system store).")
def new_signature(capture: str, technique: str | None, target: str | None, sig_id: str | None,
                  out_file: str | None, catalog_path: str | None, signatures_path: str | None,
                  ca_file: str | None) -> None:
    """Draft a signature from the packets an analysis of CAPTURE flags as injected.

    Fields and values are filled in from the capture; id, title and references are
    TODO placeholders that `fingerprint signatures lint` reports until filled.
    """
    from fingerprint.catalog import load_catalog
    from fingerprint.model import Technique
    from fingerprint.signature.draft import draft_from_capture
    from fingerprint.trust import TrustStore

    if technique is not None and technique not in {t.value for t in Technique}:
        raise click.BadParameter(f"{technique!r} is not a technique "
                                 f"({', '.join(t.value for t in Technique)})", param_hint="--technique")
    path = Path(capture)
    folder = path if path.is_dir() else path.parent
    if catalog_path is None and (folder / "catalog.yaml").is_file():
        catalog_path = str(folder / "catalog.yaml")
    if ca_file is None and (folder / "ca.pem").is_file():
        ca_file = str(folder / "ca.pem")
    if signatures_path is not None:
        library = load_library(signatures_path)
    else:
        # Drafting must work while another contributor's file is half-written.
        library, warnings = existing_signatures(default_signature_dir(), None)
        for line in warnings:
            click.echo(line, err=True)
    draft = draft_from_capture(path, load_catalog(catalog_path), library,
                               TrustStore(ca_file), technique, target, sig_id)
    click.echo(f"drafted from {draft.finding.technique.value} on {draft.finding.target}"
               + (f"; other findings: {'; '.join(draft.others)}" if draft.others else ""), err=True)
    if out_file:
        Path(out_file).write_text(draft.text, encoding="utf-8")
        click.echo(f"wrote {out_file}: fill the TODOs, then `fingerprint signatures lint`", err=True)
    else:
        click.echo(draft.text, nl=False)
