"""Loading our measurements with OONI's own Python reader, `oonidata`, as the README says.

`oonidata.dataclient.load_measurement` picks a model by `test_name` and falls back
to a bare `BaseMeasurement` for a name it does not know, which keeps the envelope
and drops every test key.  Our test keys are the template set of OONI's
`urlgetter` model (df-001 `requests`, df-002 `queries`, df-005 `tcp_connect`,
df-006 `tls_handshakes`, df-008 `network_events`, plus `agent`), so a consumer
loads a line with that model, `UrlGetter.from_dict(line)`, or registers our test
name for it (`NETTEST_MODELS["fingerprint"] = UrlGetter`) before calling
`load_measurement`.

oonidata 0.3.0 pins click~=8.0.0, cryptography~=38.0.3 and pyopenssl~=22.1 (ours
need click>=8.1, cryptography>=42, pyOpenSSL>=24) and pulls boto3: it cannot share
an environment with this package, so it is not a dev dependency and the reader
tests skip when it cannot be imported.  Its models need only `mashumaro`
(`pip install --no-deps --target DIR oonidata==0.3.0 mashumaro`, then
PYTHONPATH=DIR runs them).  The shape test below checks the same contract without it:
the fields that reader's models require, taken from oonidata 0.3.0's models.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from fingerprint.output.jsonl import dumps_line
from fingerprint.output.ooni.envelope import TEST_NAME
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.signature import load_library
from fingerprint.testing.fixtures import Fixture

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = [ROOT / "pcaps" / "lab" / "uzbekistan-2021", ROOT / "pcaps" / "ir" / "http-iframe-blockpage"]
TEMPLATE_KEYS = ("queries", "requests", "tcp_connect", "tls_handshakes", "network_events")
URLGETTER_TEST_KEYS = {"agent", "failure", "failed_operation", "socksproxy", "client_resolver",
                       *TEMPLATE_KEYS}
"""oonidata 0.3.0 UrlGetterTestKeys (with BaseTestKeys.client_resolver)."""
REQUIRED = {
    "queries": {"hostname", "query_type"},
    "tcp_connect": {"ip", "port", "status"},
    "network_events": {"operation", "t"},
    "tls_handshakes": set(),
    "requests": set(),
}
"""Fields without a default in oonidata 0.3.0's DNSQuery, TCPConnect, NetworkEvent,
TLSHandshake and HTTPTransaction."""


def _lines() -> list[dict[str, Any]]:
    import json

    library = load_library(ROOT / "signatures")
    out: list[dict[str, Any]] = []
    for folder in FIXTURES:
        result, _report = Fixture(folder).analyze(library)
        assert result.pipeline is not None
        # Through a JSONL line, as a consumer reads them.
        out += [json.loads(dumps_line(m))
                for m in measurements_from_pipeline(result.pipeline, result.verdicts)]
    return out


def test_test_keys_are_the_urlgetter_template_set() -> None:
    lines = _lines()
    assert any(m["test_keys"]["requests"] for m in lines)
    assert any(m["test_keys"]["tls_handshakes"] for m in lines)
    for m in lines:
        assert m["test_name"] == TEST_NAME
        keys = m["test_keys"]
        assert {k for k in keys if not k.startswith("x_")} <= URLGETTER_TEST_KEYS
        for key, required in REQUIRED.items():
            for entry in keys[key]:
                assert required <= set(entry), (key, entry)
        for connect in keys["tcp_connect"]:
            assert isinstance(connect["status"]["success"], bool)
        for query in keys["queries"]:
            assert all("answer_type" in a for a in query["answers"])


READER = Path(__file__).resolve().parents[2] / ".venv" / "oonidata"
"""Where scripts/bootstrap installs oonidata's models apart from this package's pins."""


def _oonidata() -> Any:
    if READER.is_dir() and str(READER) not in sys.path:
        sys.path.append(str(READER))
    try:
        from oonidata.models import nettests
    except ImportError as exc:
        pytest.skip(f"oonidata is not importable ({exc}); it conflicts with this package's "
                    "pins (see this module's docstring)")
    return nettests


def _count(model: Any, key: str) -> int:
    return len(getattr(model.test_keys, key) or [])


def test_oonidata_loads_every_entry_with_the_documented_model() -> None:
    nettests = _oonidata()
    for line in _lines():
        loaded = nettests.UrlGetter.from_dict(line)
        for key in TEMPLATE_KEYS:
            assert _count(loaded, key) == len(line["test_keys"][key]), key
        assert (loaded.probe_cc, loaded.report_id, loaded.input) == (
            line["probe_cc"], line["report_id"], line["input"])
        for query, raw in zip(loaded.test_keys.queries or [], line["test_keys"]["queries"],
                              strict=True):
            assert (query.hostname, query.failure, query.engine) == (
                raw["hostname"], raw["failure"], raw["engine"])
            assert [a.ipv4 for a in query.answers or []] == [a.get("ipv4") for a in raw["answers"]]
        for connect, raw in zip(loaded.test_keys.tcp_connect or [],
                                line["test_keys"]["tcp_connect"], strict=True):
            assert (connect.ip, connect.port, connect.status.failure) == (
                raw["ip"], raw["port"], raw["status"]["failure"])
        for request, raw in zip(loaded.test_keys.requests or [], line["test_keys"]["requests"],
                                strict=True):
            assert request.response is not None and request.request is not None
            assert (request.request.url, request.response.code) == (
                raw["request"]["url"], raw["response"]["code"])


def test_oonidata_generic_path_keeps_entries_once_the_test_name_is_registered() -> None:
    nettests = _oonidata()
    line = next(m for m in _lines() if m["test_keys"]["tls_handshakes"])
    # What the issue saw: unknown test name -> a bare base measurement, test keys gone.
    bare = nettests.NETTEST_MODELS.get(line["test_name"], nettests.BaseMeasurement).from_dict(line)
    assert not hasattr(bare.test_keys, "tls_handshakes")
    models = dict(nettests.NETTEST_MODELS)
    models[TEST_NAME] = nettests.UrlGetter  # the README's one line before load_measurement
    loaded = models.get(line["test_name"], nettests.BaseMeasurement).from_dict(line)
    assert _count(loaded, "tls_handshakes") == len(line["test_keys"]["tls_handshakes"])
