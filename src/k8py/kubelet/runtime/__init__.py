"""Container runtimes with the CRI's shape: :mod:`.types` is the interface, :mod:`.fake` runs
nothing (simulated nodes), :mod:`.runc` runs real containers."""
