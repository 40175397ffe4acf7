"""One package per clinical task: its preprocessing, data, training recipe, metrics and model card.

Each package exposes ``TASK`` (an ``engine.models.task_registry.TaskSpec``) and registers it under
the ``salience.tasks`` entry points in ``pyproject.toml``. Generic engine code finds tasks through
that registry and never imports this package (an import-linter contract says so).
"""
