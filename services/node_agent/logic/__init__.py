"""The node-agent's pure decisions: what a pod worker must do next, what the
pod status says, how a container's environment and argv are built, which
static pods a manifest directory holds and how a simulated container behaves.

Nothing in this package does I/O or reads a clock: callers pass `now` (epoch
seconds, float) and the observed state, and perform the returned actions.
The driver (pod workers, status manager, runtimes) sits in the modules beside
this package.
"""
