"""Censor signatures: declarative matchers over a finding's fields and packets.

Signatures name *who* did it; the technique comes from the control logic
(`fingerprint.analysis.rules`), so an unknown censor is still classified.  See
`library` for loading and linting, `match` for the semantics.
"""

from fingerprint.signature.library import Signature, SignatureLibrary, load_library

__all__ = ["Signature", "SignatureLibrary", "load_library"]
