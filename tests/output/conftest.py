"""Fixtures for the output tests (the synthetic network lives in synthetic.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synthetic import CATALOG_YAML, SIGNATURE_YAML, censored_network, write_test_ca


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG_YAML)
    return path


@pytest.fixture
def signatures_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "signatures"
    folder.mkdir()
    (folder / "test-rst-ttl64.yaml").write_text(SIGNATURE_YAML)
    return folder


@pytest.fixture
def censored_capture(tmp_path: Path) -> Path:
    return censored_network().write(tmp_path / "censored.pcapng")




@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic world's CA: its TLS servers present certificates it signed."""
    return write_test_ca(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture
def analyze(catalog_file: Path, signatures_dir: Path, test_ca: Path) -> Callable[..., Any]:
    """Analyse capture files with the test catalog and signature; returns the `Result`."""
    from fingerprint.analysis.pipeline import analyze_files
    from fingerprint.catalog import load_catalog
    from fingerprint.signature import load_library
    from fingerprint.trust import TrustStore

    def run(*paths: Path) -> Any:
        catalog = load_catalog(str(catalog_file))
        library = load_library(str(signatures_dir))
        return analyze_files([str(p) for p in paths], catalog, library, TrustStore(str(test_ca)),
                             on_problem=lambda _line: None)

    return run
