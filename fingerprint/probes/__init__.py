"""Live probes: DNS, TLS-SNI, HTTP and IP, run concurrently with one shared sniffer.

`fingerprint.probes.sweep.run_probe(config, library, trust)` runs a probe and
returns the recorded packets, the capture hints and the verdicts of the
analysis pipeline; `fingerprint probe` (cli.py) is its command line.
"""
