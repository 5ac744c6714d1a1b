"""Shared helpers for the test suite (media generation, a local HTTP media server, audio analysis)."""
