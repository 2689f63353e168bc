"""OpsResponder: event processing and automated response in one process."""

__version__ = "0.1.0"
