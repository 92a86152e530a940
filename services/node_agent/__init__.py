"""podbus node_agent."""
