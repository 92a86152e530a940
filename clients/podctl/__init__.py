"""podbus podctl."""
