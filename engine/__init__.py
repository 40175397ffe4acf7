"""Salience engine: imaging I/O, MONAI models and bundles, the CAM engine, metrics.

No Qt and no database here: everything can run headless and is tested without a display.
"""
