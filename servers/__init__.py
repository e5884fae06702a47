"""Spyglass MCP servers: vendor toolsets wired through the guards seam."""
