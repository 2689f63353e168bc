"""The two HTTP APIs: events and rules on port 3009, autonomous response on port 3011."""
