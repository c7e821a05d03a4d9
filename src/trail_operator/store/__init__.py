"""ClickHouse: table DDL, the store catalog, inserts and reads. Knows nothing of Kubernetes."""
