"""Real services the lab runs in its server namespace.

* `resolver`: the lab's resolver (plain DNS over UDP/TCP, answering a little
  late like a real recursive resolver) and the control resolver (DoT, DoH).
* `web`: TLS and plain-HTTP servers on every platform's lab address.

Each runs as `python -m fingerprint.lab.services.<name> ...` under
`ip netns exec`, and touches its `--ready-file` once it listens.
"""
