"""Listeners and protocol decoders: everything that turns bytes from a sender into Events."""
