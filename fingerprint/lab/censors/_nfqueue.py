"""The NFQUEUE loop the lab's userspace hops share (the censor engine, the slow
middlebox): bind a queue, say ready, hand every packet to `handle` until stopped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_queue(number: int, handle: Callable[[Any], None], max_len: int,
              ready_file: str | None) -> None:
    """Serve NFQUEUE `number` (the kernel drops packets past `max_len` queued) until
    interrupted; touches `ready_file` once bound, so the lab starts sending only then."""
    # Imported here: NetfilterQueue is the lab extra, and only the hop's process needs it.
    from netfilterqueue import NetfilterQueue

    queue = NetfilterQueue()
    queue.bind(number, handle, max_len=max_len)
    if ready_file:
        Path(ready_file).touch()
    try:
        queue.run()
    except KeyboardInterrupt:
        pass
    finally:
        queue.unbind()
