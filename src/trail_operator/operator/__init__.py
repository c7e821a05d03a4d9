"""Kopf handlers: thin edges that translate resources into store calls and status."""
