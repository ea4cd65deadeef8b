"""Callbacks that schedule dropout rates during `fit`."""
