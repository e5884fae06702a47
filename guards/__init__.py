"""Spyglass guards: policy, decisions, limits, redaction and audit for MCP tool calls.

A standalone library: it imports nothing from ``servers``. Any MCP server can wrap its tools
with :class:`guards.enforce.Guard` and get deny-by-default policy, budgets, redaction and one
audit event per call.
"""
