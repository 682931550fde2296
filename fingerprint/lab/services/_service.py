"""What every lab service does the same way: tell the lab it listens, serve until
killed, and (for the per-site services) read the same command line."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any


async def ready_and_wait(ready_file: str | None) -> None:
    """Touch the `--ready-file` the lab waits for, then serve until the lab kills us."""
    if ready_file:
        Path(ready_file).touch()
    await asyncio.Event().wait()


def run_sites_service(description: str,
                      serve: Callable[[argparse.Namespace], Coroutine[Any, Any, None]]) -> None:
    """`main()` of a service that serves every platform site (`--sites`, `--ready-file`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sites", required=True,
                        help='JSON {"sites": [{address, platform, names, cert, key}]}')
    parser.add_argument("--ready-file")
    asyncio.run(serve(parser.parse_args()))
