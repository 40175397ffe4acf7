"""Case analysis: predictions and maps of a volume, a clip or a slide from one capture per batch."""
