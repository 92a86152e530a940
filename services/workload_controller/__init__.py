"""podbus workload_controller."""
