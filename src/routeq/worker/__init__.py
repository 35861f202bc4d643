"""Celery side of routeq: the app, the publisher, the steps and the thin tasks."""
