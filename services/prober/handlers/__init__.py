"""Probe handlers: one run of a tcpSocket, httpGet, grpc or exec probe,
returning an Outcome in the kubelet's words. Plain asyncio network code;
nothing here knows NATS, thresholds or schedules."""
