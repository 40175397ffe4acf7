"""Thin widgets around the slice view; each follows ``ViewerState`` or emits requests."""
