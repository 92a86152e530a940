"""podbus prober: one per node (`python -m services.prober --node NAME`).

Runs the liveness, readiness and startup probes its node-agent assigns
(service.py on the bus, manager.py the probe workers, scheduler.py the
timer wheel, handlers/ one run of each probe kind, logic/ the pure rules)
and reports their transitions back.
"""
