"""Statsig (Console API): gates, experiments, dynamic configs, segments, and the audit log."""
