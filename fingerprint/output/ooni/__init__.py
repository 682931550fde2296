"""Analysis results as OONI measurements (ooni/spec data-formats).

One measurement per (platform, target): a target is one name tested (asked of a
resolver, sent as SNI or Host) or one address tested for IP blocking.  That is
the granularity OONI tools expect: OONI's own experiments emit one measurement
per `input` (a URL, a domain or an address), and its pipeline, Explorer and
analysis scripts group, count and compare measurements by `input`.  A
measurement per platform would have no single input; one per packet flow would
split a verdict that rests on a target *and* its control.  The platform's
overall verdict rides along under `x_fingerprint` in each of its measurements.

Envelope: df-000 / data-formats README (`measurement_start_time` and
`test_start_time` as "YYYY-MM-DD hh:mm:ss" UTC, `probe_ip` "127.0.0.1" unless
the user shares it; `probe_cc` / `probe_asn` are the user's, else the ones the
capture's notes record; `report_id` is the run id in OONI's form, with country
and network; `annotations` carry df-000's architecture, engine_name,
engine_version and platform; `extensions` names the templates used, as OONI
Probe does).  `test_keys` use the template shapes where
one exists: df-001 `agent` and `requests` (plain-HTTP exchanges as observed:
"agent", since no redirect is followed), df-002 `queries`, df-005
`tcp_connect`, df-006 `tls_handshakes`, df-008 `network_events`; failure
strings are df-007's.  Key names and types follow ooni/spec and OONI Probe's
archival structures (internal/model/archival.go in ooni/probe-cli).  Everything of this tool's own
sits under keys starting with `x_`, which the data-formats README permits
anywhere.  The test keys are the set of OONI's `urlgetter` model, so OONI's
Python reader loads them with that model (README, "OONI measurements").
Times `t0`/`t` are seconds since `measurement_start_time`.

The probe's own address never appears unless asked: in evidence packets and
texts it is replaced by `probe_ip`.

Modules: `envelope` (top-level keys, run id, annotations), `entries` (the
`test_keys` entries per attempt), `failures` (df-007 strings) and
`measurements` (one measurement per target, `build_measurements`).
"""
