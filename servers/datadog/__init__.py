"""Datadog: logs, metrics, spans and traces, Error Tracking, monitors, incidents, events, dashboards."""
