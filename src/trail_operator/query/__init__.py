"""Lookup and SQL over event data stores, checked and confined to what the caller may read."""
