"""Noise control: silences (maintenance windows) and flapping, as the ``noise`` pipeline stage."""

from opsresponder.pipeline.noise.stage import Noise, NoSilences, SilenceSource

__all__ = ["NoSilences", "Noise", "SilenceSource"]
