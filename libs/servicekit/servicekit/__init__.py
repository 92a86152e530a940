"""servicekit: the I/O every podbus service shares (bus, store, informer,
leader election, telemetry, service runner)."""
