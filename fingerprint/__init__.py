"""fingerprint: tells researchers *how* a platform is censored on a network.

Packets (from live probes or capture files) become observations, observations
compared with controls become findings, findings matched against the signature
library name the censor.  See README.md for the pipeline.
"""

__version__ = "0.1.0"


def _disable_unreadable_scapy_folders() -> None:
    """Let scapy run without its cache when the user's cache or config folder is unreadable.

    `sudo -E fingerprint probe` keeps HOME, so root may leave a root-owned ~/.cache
    behind; scapy then dies at import with PermissionError in every later unprivileged
    `analyze` (secdev/scapy#4618).  A folder that cannot be created makes scapy skip it.
    """
    import os

    home = os.path.expanduser("~")
    for variable, default in (("XDG_CACHE_HOME", ".cache"), ("XDG_CONFIG_HOME", ".config")):
        base = os.environ.get(variable) or os.path.join(home, default)
        try:
            os.stat(os.path.join(base, "scapy", "_"))
        except PermissionError:
            os.environ[variable] = os.path.join(os.devnull, "fingerprint")
        except OSError:
            pass  # missing: scapy creates it, or copes when it cannot


_disable_unreadable_scapy_folders()
