"""The node-agent's pure decisions: what a pod worker must do next, what the
pod status says, how a container's environment and argv are built, which
static pods a manifest directory holds, how a simulated container behaves,
which probes the prober must run and what its results mean, the kubelet's
events (deduplicated), the lifecycle facts behind events and spans, and log
shaping (tail, timestamps).

Nothing in this package does I/O or reads a clock: callers pass `now` (epoch
seconds, float) and the observed state, and perform the returned actions.
The driver (pod workers, status manager, runtimes) sits in the modules beside
this package.
"""
