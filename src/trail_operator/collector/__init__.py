"""Sidecar collectors that tail files and push events (the Integration issue)."""
