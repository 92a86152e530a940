"""podbus clients."""
