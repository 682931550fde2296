"""QUIC and ECH rules on crafted captures: quic.sni_drop, quic.drop, residual blocking,
TTL localisation, tls.ech_drop/reset against tls.sni_* with ECH, and no verdict without a
control that worked."""

from __future__ import annotations

from pathlib import Path

from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.pipeline import RECORDED_UNTIL_KEY, analyze_files
from fingerprint.catalog import load_catalog
from fingerprint.signature import load_library
from fingerprint.testing import replay
from fingerprint.testing.craft import Capture
from fingerprint.testing.scenes import write_catalog_serving_quic
from fingerprint.trust import TrustStore

SERVER = "203.0.113.20"
TARGET, CONTROL = "twitter.com", "example.com"


def _write(cap: Capture, tmp_path: Path) -> Path:
    # A last datagram elsewhere 30 s on: the silences before it are due, not pending.
    last = max(ts for ts, _data in cap.frames) - cap.start
    cap.quic("192.0.2.99", 443, at=last + 30.0).datagram(b"end", at_s=0.0)
    return cap.write(tmp_path / "capture.pcapng")


def _quic(cap: Capture, sni: str | None, at: float, *, answered: bool, ech: bool = False,
          ttl: int | None = None) -> None:
    flow = cap.quic(SERVER, 443, at=at)
    flow.initial(sni, ech=ech, ttl=ttl)
    if answered:
        flow.answer()


def test_quic_sni_drop_with_control_and_residual_block(tmp_path: Path) -> None:
    cap = Capture(seed=11)
    _quic(cap, CONTROL, 0.0, answered=True)
    trigger = cap.quic(SERVER, 443, at=1.0, sport=40000)
    trigger.initial(TARGET)
    trigger.initial(TARGET, at_s=1.0)
    # Later datagrams on the same (client, server, port), another source port: unanswered
    # for 91 s, answered at 200 s (the GFW's residual block lasts about 180 s).
    for at in (10.0, 50.0, 91.0):
        later = cap.quic(SERVER, 443, at=1.0, sport=40001 + int(at))
        later.datagram(b"probe payload", at_s=at)
    after = cap.quic(SERVER, 443, at=201.0, sport=45000)
    after.datagram(b"probe payload", at_s=0.0)
    after.server_datagram(b"echo", at_s=0.05)
    run = replay(_write(cap, tmp_path))
    finding = run.expect(technique="quic.sni_drop")
    assert finding.target == TARGET and finding.address == SERVER
    assert finding.confidence == 0.93  # with control, repeated
    assert finding.context["trigger.ech"] is False
    assert finding.context["quic.residual_s"] == 91.0
    assert any("residual block" in n and "answered again 200 s" in n for n in finding.notes)


def test_quic_answered_target_is_accessible(tmp_path: Path) -> None:
    cap = Capture(seed=12)
    _quic(cap, CONTROL, 0.0, answered=True)
    _quic(cap, TARGET, 1.0, answered=True, ech=True)
    run = replay(_write(cap, tmp_path))
    assert not [f for f in run.findings if f.technique.value.startswith("quic.")]
    checks = [c for c in run.result.verdicts.checks if c.kind == "quic" and c.target == TARGET]
    assert checks and all(c.ok for c in checks)


def _udp_silent_tcp_works(seed: int, target: str = TARGET, *, answered_before: bool = False
                          ) -> Capture:
    """The control and the target SNI's Initials unanswered at SERVER, TCP/443 there
    working; with `answered_before`, a control Initial answered 60 s earlier."""
    cap = Capture(seed=seed)
    if answered_before:
        _quic(cap, CONTROL, 0.0, answered=True)
    _quic(cap, CONTROL, 60.0, answered=False)
    _quic(cap, CONTROL, 61.0, answered=False)
    _quic(cap, target, 62.0, answered=False)
    tcp = cap.tcp(SERVER, 443, at=63.0)
    tcp.handshake()
    tcp.client_hello(target)
    tcp.server_hello()
    return cap


def test_quic_drop_needs_tcp_to_work(tmp_path: Path) -> None:
    # google.com: the built-in catalog lists Google as serving QUIC (with its source).
    run = replay(_write(_udp_silent_tcp_works(13, "google.com"), tmp_path))
    finding = run.expect(technique="quic.drop")
    assert finding.confidence == 0.8
    assert any("catalog lists Google as serving QUIC" in note for note in finding.notes)


def test_quic_silence_at_a_server_not_known_to_speak_quic_is_inconclusive(tmp_path: Path) -> None:
    """Many servers answer TCP/443 and never listen on UDP/443: Initials unanswered
    whatever the SNI there are no evidence of dropping when nothing shows the server
    speaks QUIC (twitter.com: not listed as serving QUIC in the built-in catalog)."""
    run = replay(_write(_udp_silent_tcp_works(16), tmp_path))
    assert not run.findings
    check = next(c for c in run.result.verdicts.checks if c.kind == "quic" and c.target == TARGET)
    assert not check.ok and "nothing shows the server speaks QUIC" in check.detail
    # Not judged, so it does not make the platform inconclusive: its TLS test worked.
    assert not check.applicable and run.status("twitter") == "accessible"
    tested = next(t for p in run.report["platforms"] if p["platform"] == "twitter"
                  for t in p["tested"] if t["kind"] == "quic")
    assert tested["applicable"] is False


def test_quic_answered_earlier_shows_the_server_speaks_quic(tmp_path: Path) -> None:
    run = replay(_write(_udp_silent_tcp_works(17, answered_before=True), tmp_path))
    finding = run.expect(technique="quic.drop", target=TARGET)
    assert any(f"an Initial to {SERVER} was answered" in note for note in finding.notes)


def test_catalog_quic_flag_shows_the_server_speaks_quic(tmp_path: Path) -> None:
    run = replay(_write(_udp_silent_tcp_works(18), tmp_path), catalog=write_catalog_serving_quic(tmp_path, "twitter"))
    run.expect(technique="quic.drop", target=TARGET)


def test_quic_all_unanswered_without_tcp_is_inconclusive(tmp_path: Path) -> None:
    cap = Capture(seed=14)
    _quic(cap, CONTROL, 0.0, answered=False)
    _quic(cap, TARGET, 1.0, answered=False)
    run = replay(_write(cap, tmp_path))
    assert not run.findings
    check = next(c for c in run.result.verdicts.checks if c.kind == "quic" and c.target == TARGET)
    assert not check.ok and "TCP/443" in check.detail


def test_quic_without_control_is_inconclusive(tmp_path: Path) -> None:
    cap = Capture(seed=15)
    _quic(cap, TARGET, 0.0, answered=False)
    _quic(cap, TARGET, 2.0, answered=False)
    run = replay(_write(cap, tmp_path))
    assert not run.findings
    check = next(c for c in run.result.verdicts.checks if c.kind == "quic")
    assert not check.ok and check.control_ok is None


def test_quic_ttl_limited_initials_localise_a_drop(tmp_path: Path) -> None:
    cap = Capture(seed=16)
    _quic(cap, CONTROL, 0.0, answered=True)
    _quic(cap, TARGET, 1.0, answered=False)
    censor_hop = 3
    for ttl in range(1, 6):
        flow = cap.quic(SERVER, 443, at=10.0 + ttl * 5)
        flow.initial(TARGET, ttl=ttl)
        if ttl < censor_hop:
            flow.expire(f"198.51.100.{ttl}", at_s=0.01)
        # A full-TTL payload on the same flow: answered unless the Initial reached the censor.
        flow.datagram(b"payload", at_s=1.0)
        if ttl < censor_hop:
            flow.server_datagram(b"echo", at_s=1.05)
    run = replay(_write(cap, tmp_path))
    finding = run.expect(technique="quic.sni_drop")
    assert finding.location is not None and finding.location.hop == censor_hop


def _tls(cap: Capture, sni: str | None, at: float, *, ech: bool, outcome: str) -> None:
    flow = cap.tcp(SERVER, 443, at=at)
    flow.handshake()
    flow.client_hello(sni, ech=ech)
    if outcome == "ok":
        flow.server_hello()
    elif outcome == "reset":
        flow.inject("RA", at_ms=5, ttl=120, ip_id=0)


def test_tls_ech_drop_when_the_same_hello_without_ech_works(tmp_path: Path) -> None:
    cap = Capture(seed=21)
    for n in range(2):
        _tls(cap, "cloudflare-ech.com", n * 1.0, ech=False, outcome="ok")
        _tls(cap, "cloudflare-ech.com", 10 + n * 1.0, ech=True, outcome="drop")
    run = replay(_write(cap, tmp_path))
    finding = run.expect(technique="tls.ech_drop")
    assert finding.target == "cloudflare-ech.com"
    assert finding.context["trigger.ech"] is True
    assert finding.context["trigger.sni"] == "cloudflare-ech.com"
    assert any("carried ECH (outer SNI cloudflare-ech.com)" in n for n in finding.notes)
    assert not [f for f in run.findings if f.technique.value.startswith("tls.sni_")]


def test_tls_ech_reset_without_outer_sni(tmp_path: Path) -> None:
    cap = Capture(seed=22)
    _tls(cap, None, 0.0, ech=False, outcome="ok")
    _tls(cap, None, 1.0, ech=True, outcome="reset")
    _tls(cap, None, 2.0, ech=True, outcome="reset")
    run = replay(_write(cap, tmp_path))
    finding = run.expect(technique="tls.ech_reset")
    assert "trigger.sni" not in finding.context and finding.context["trigger.ech"] is True


def test_outer_sni_triggering_is_tls_sni_with_ech_noted(tmp_path: Path) -> None:
    cap = Capture(seed=23)
    _tls(cap, CONTROL, 0.0, ech=True, outcome="ok")
    _tls(cap, TARGET, 1.0, ech=True, outcome="reset")
    _tls(cap, TARGET, 2.0, ech=True, outcome="reset")
    run = replay(_write(cap, tmp_path))
    finding = run.expect(technique="tls.sni_reset")
    assert finding.target == TARGET and finding.context["trigger.ech"] is True
    assert any("carried ECH (outer SNI twitter.com)" in n for n in finding.notes)
    assert not [f for f in run.findings if f.technique.value.startswith("tls.ech_")]


def test_ech_failing_with_no_plain_control_is_inconclusive(tmp_path: Path) -> None:
    cap = Capture(seed=24)
    _tls(cap, None, 0.0, ech=True, outcome="drop")
    _tls(cap, "www.rfc-editor.org", 1.0, ech=True, outcome="ok")
    run = replay(_write(cap, tmp_path))
    assert not run.findings


def test_malformed_quic_is_counted_and_skipped(tmp_path: Path) -> None:
    cap = Capture(seed=25)
    _quic(cap, CONTROL, 0.0, answered=True)
    flow = cap.quic(SERVER, 443, at=1.0)
    good = flow.initial(TARGET)
    # A truncated Initial, a bad length and an unknown version, to UDP/443.
    payload = good[28:]
    flow.datagram(payload[:60], at_s=0.5)
    flow.datagram(payload[:5] + b"\x08" + payload[6:], at_s=0.6)
    flow.datagram(b"\xc0\x1a\x2b\x3c\x4d" + payload[5:200], at_s=0.7)
    flow.answer(at_s=1.0)
    run = replay(_write(cap, tmp_path))
    assert not run.findings
    assert any("malformed QUIC" in p for p in run.result.problems)


def test_quic_ech_with_an_outer_sni_answered_without_ech_is_tls_ech_drop(tmp_path: Path) -> None:
    cap = Capture(seed=26)
    _quic(cap, CONTROL, 0.0, answered=True)
    _quic(cap, "cloudflare-ech.com", 1.0, answered=True)
    _quic(cap, "cloudflare-ech.com", 2.0, answered=False, ech=True)
    _quic(cap, "cloudflare-ech.com", 3.0, answered=False, ech=True)
    run = replay(_write(cap, tmp_path))
    finding = run.expect(technique="tls.ech_drop")
    assert finding.context["trigger.ech"] is True and finding.context["quic.version"] == 1
    assert not [f for f in run.findings if f.technique.value.startswith("quic.")]


def test_one_unanswered_variant_against_the_other_answered_is_loss(tmp_path: Path) -> None:
    cap = Capture(seed=27)
    _quic(cap, CONTROL, 0.0, answered=True)
    _quic(cap, TARGET, 1.0, answered=True)
    _quic(cap, TARGET, 2.0, answered=False, ech=True)
    run = replay(_write(cap, tmp_path))
    assert not run.findings
    checks = [c for c in run.result.verdicts.checks if c.kind == "quic" and c.target == TARGET]
    assert checks and all(c.ok for c in checks) and "taken as loss" in checks[-1].detail


def test_quic_handshakes_in_the_ooni_measurement(tmp_path: Path) -> None:
    from fingerprint.output.ooni.measurements import measurements_from_pipeline

    cap = Capture(seed=28)
    _quic(cap, CONTROL, 0.0, answered=True)
    _quic(cap, TARGET, 1.0, answered=False)
    _quic(cap, TARGET, 2.0, answered=False)
    run = replay(_write(cap, tmp_path))
    assert run.result.pipeline is not None
    found = measurements_from_pipeline(run.result.pipeline, run.result.verdicts)
    mine = next(m for m in found if m["input"] == TARGET)
    handshakes = mine["test_keys"]["quic_handshakes"]
    assert [h["tags"] for h in handshakes] == [["control"], ["target"], ["target"]]
    assert all(h["network"] == "udp" and h["address"] == f"{SERVER}:443" for h in handshakes)
    assert handshakes[0]["failure"] is None and handshakes[0]["server_name"] == CONTROL
    assert [h["failure"] for h in handshakes[1:]] == ["generic_timeout_error"] * 2


def _at_server(seed: int) -> Capture:
    """A capture taken at the server: the client's datagrams arrive routed (47 left of
    64), the server's leave with their initial TTL."""
    cap = Capture(seed=seed, client_ttl=47)
    flow = cap.quic(SERVER, 443, at=0.0, server_ttl=64)
    flow.initial(CONTROL)
    flow.answer()
    return cap


def test_initial_unanswered_at_the_server_is_not_a_drop(tmp_path: Path) -> None:
    # The target's Initial arrived (so the path carried it) and the server did not answer
    # it: the client-side reading (control answered, target not) would be quic.sni_drop.
    cap = _at_server(31)
    silent = cap.quic(SERVER, 443, at=1.0, server_ttl=64)
    silent.initial(TARGET)
    silent.initial(TARGET, at_s=1.0)
    went_on = cap.quic(SERVER, 443, at=5.0, server_ttl=64)
    went_on.initial(TARGET)
    went_on.datagram(b"probe payload", at_s=5.0)
    run = replay(_write(cap, tmp_path))
    assert run.result.verdicts.capture_point["end"] == "server"
    assert not [f for f in run.findings if f.technique.value.startswith("quic.")]
    checks = [c for c in run.result.verdicts.checks if c.kind == "quic" and c.target == TARGET]
    assert [c.ok for c in checks] == [False]
    assert "captured at the server" in checks[0].detail
    assert "1 followed by no later datagram" in checks[0].detail


def test_flows_going_on_after_the_initial_at_the_server_work(tmp_path: Path) -> None:
    cap = _at_server(32)
    for n in range(2):
        flow = cap.quic(SERVER, 443, at=1.0 + n, server_ttl=64)
        flow.initial(TARGET)
        flow.datagram(b"probe payload", at_s=5.0)
    run = replay(_write(cap, tmp_path))
    checks = [c for c in run.result.verdicts.checks if c.kind == "quic" and c.target == TARGET]
    assert [c.ok for c in checks] == [True]


def test_vantage_client_reads_a_server_capture_as_the_client_side(tmp_path: Path) -> None:
    cap = _at_server(33)
    silent = cap.quic(SERVER, 443, at=1.0, server_ttl=64)
    silent.initial(TARGET)
    silent.initial(TARGET, at_s=1.0)
    path = _write(cap, tmp_path)
    result = analyze_files([str(path)], load_catalog(None), load_library(None), TrustStore(None),
                           on_problem=lambda _line: None,
                           vantage=CaptureHints(raw={"capture_point": "client"}))
    assert [f.target for f in result.verdicts.findings
            if f.technique.value == "quic.sni_drop"] == [TARGET]


def _udp_dropped_run(*, recorded_for: float | None) -> Capture:
    """TCP/443 works; every Initial unanswered, each resent as the probe does (0.67 s, 1.33 s
    later).  The target's are the run's last packets: the probe's window closed 2 s after
    them with nothing more to record."""
    cap = Capture(seed=16)
    tcp = cap.tcp(SERVER, 443, at=0.0)
    tcp.handshake()
    tcp.client_hello(CONTROL)
    tcp.server_hello()
    for at, sni in ((0.5, CONTROL), (3.0, TARGET), (3.1, TARGET)):
        first = cap.quic(SERVER, 443, at=at).initial(sni)
        for resend in (0.67, 1.33):
            cap.emit(at + resend, first)
    if recorded_for is not None:
        cap.hints[RECORDED_UNTIL_KEY] = round(cap.start + 3.1 + recorded_for, 6)
    return cap


def test_the_last_initials_count_when_the_notes_say_recording_went_on(tmp_path: Path) -> None:
    """Issue 14 (udp-drop: a platform missed): an unanswered QUIC attempt ends in silence, so
    the capture's last packet is the last resend, and 1.33 s is too short for silence to
    count.  The probe's notes say it recorded until its 2 s window closed."""
    run = replay(_udp_dropped_run(recorded_for=2.1).write(tmp_path / "capture.pcapng"),
                 catalog=write_catalog_serving_quic(tmp_path, "twitter"))
    finding = run.expect(technique="quic.drop", target=TARGET)
    assert finding.address == SERVER


def test_the_last_initials_are_pending_without_the_recording_note(tmp_path: Path) -> None:
    run = replay(_udp_dropped_run(recorded_for=None).write(tmp_path / "capture.pcapng"),
                 catalog=write_catalog_serving_quic(tmp_path, "twitter"))
    assert not [f for f in run.findings if f.target == TARGET]
