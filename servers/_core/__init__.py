"""Shared plumbing for every toolset. Imports ``guards`` and no vendor package."""
