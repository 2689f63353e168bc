"""HTTP ingest: the webhook endpoints and the native payload adapters of monitoring systems."""
