"""Thin widgets around the slice view; each follows a model of ``ui.model`` or emits requests."""
