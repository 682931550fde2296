"""fingerprint: tells researchers *how* a platform is censored on a network.

Packets (from live probes or capture files) become observations, observations
compared with controls become findings, findings matched against the signature
library name the censor.  See README.md for the pipeline.
"""

__version__ = "0.1.0"
