"""The event record and the normalizers that turn each source into it (pure, no I/O)."""
