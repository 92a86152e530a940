"""The prober's pure logic: the assignment/result protocol, the probe state
machine (thresholds, gating, transitions), port resolution and the wire
formats of HTTP/1.1 and gRPC health checks. No I/O, no clock reads."""
