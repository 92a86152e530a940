"""podbus scheduler."""
