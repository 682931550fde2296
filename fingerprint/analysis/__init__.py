"""The path from packets to findings.

One module per step, in the order a packet travels:

* `observe`: packets -> observations (DNS exchanges, TCP flows); sans-IO.
* `outcome`: what a closed TCP flow came to (`Outcome`), decided once when it closes.
* `flowstore`: closed flows no finding cites, packed into bytes.
* `index`: every observation kept, per target its attempts, their controls, the
  TTL-limited repeats and the address's other ports (read by the rules and by the
  OONI builder).
* `rules/`: one module per protocol family (dns, tls, http, ip) turning the index
  into findings, with `confidence` holding every confidence value and its reason.
* `residual`: residual blocking after an injected answer (scope, duration), read by
  the ip and trigger rules from the order of events.
* `confirm`: the probe's confirmation round (flows named in the capture notes),
  kept out of the index and judged after the rules; `coverage`: a capture cut short.
* `locate`, `evidence`: where on the path, and which packets prove it.
* `signatures`: applying the signature library (false-positive suppression,
  promotion of candidates), its own step after the rules.
* `pipeline`: the whole, as live probes and capture replay run it.

Import what you need from its module (`fingerprint.analysis.pipeline.analyze_files`):
this file imports nothing, so reading one step does not load them all.
"""
