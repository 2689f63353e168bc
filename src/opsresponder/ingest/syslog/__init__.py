"""Syslog ingestion: UDP, TCP and TLS listeners, RFC 6587 framing, and the syslog format parsers."""
