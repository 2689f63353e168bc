"""Intake queue, batch worker and the processing stages."""
