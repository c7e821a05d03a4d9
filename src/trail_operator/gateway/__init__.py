"""The ingest gateway: HTTP front door for audit webhooks and pushed events, and the query API."""
