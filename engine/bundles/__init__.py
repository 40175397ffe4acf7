"""Model bundles shipped with Salience, one folder each in MONAI's bundle layout.

Load them with ``engine.models.load_bundle(name)``; ``engine.models.list_bundles()`` names them.
Each folder's ``docs/README.md`` is its model card and says how the weights were trained.
"""
