"""Slack: search, channel history, threads, channels and users (read); opt-in posting (slack_write)."""
