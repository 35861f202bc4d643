"""Trained routing: models that predict which tier answers a query well, their artifacts, and
the policies that route with them (docs/routing.md).

Importing the package is cheap: only ``configs`` (the policies' config sections) is imported
when the settings load; NumPy, scikit-learn and the embedding model load when used.
"""
