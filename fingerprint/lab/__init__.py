"""The censor lab: an emulated network with real services and a censor that
reproduces published censorship behaviours (`fingerprint lab`).

Where things live:

* `topology.py`: network namespaces, veth links, addresses and routes.
* `services/`: the resolver (plain DNS and DoT), TLS and HTTP servers.
* `censors/`: one module per censor behaviour, each citing its source; the
  in-path engine (`censors/engine.py`) that runs them in the censor namespace.
  A new behaviour is a new module there, registered in `censors/__init__.py`.
* `scenarios/`: one YAML file per scenario (which platforms are blocked by
  which behaviour, with sources).  A new scenario is a new file there.
* `lab.py`: bringing a scenario up and tearing it down; `state.py`: the state
  directory, lock and stale-state cleanup; `cli.py`: the `lab` command group.

Everything runs in namespaces with no link to the host's namespace and
addresses only from the documentation ranges, so nothing leaves the machine.
"""
