"""Minimal, defensive parsers for the application protocols the probes trigger on.

Each parser takes untrusted bytes and returns a small record or None; none of
them raises on malformed input and each bounds its own work.
"""
