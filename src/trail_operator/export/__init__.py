"""S3 delivery of Trail log files and digests (the Trail issue)."""
