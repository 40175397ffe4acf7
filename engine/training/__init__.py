"""The shared training machinery: the recipe loop, its command-line options, the bundle writer and
evaluation. Task recipes (``engine/tasks/<task>/train.py``) compose these; nothing here knows a task."""
