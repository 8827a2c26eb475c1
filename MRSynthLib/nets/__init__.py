"""Torch networks (imported only by the torch backend and by training; never at package import)."""
