"""Datadog: logs, metrics (and, with the observability toolset, traces, monitors, incidents...)."""
