"""podbus prober."""
