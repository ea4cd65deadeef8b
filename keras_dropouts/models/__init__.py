"""Models: RDropModel."""
