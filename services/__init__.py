"""podbus services."""
