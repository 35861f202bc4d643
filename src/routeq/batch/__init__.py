"""Batch jobs: document summarization."""

from routeq.batch.ingest import Document, collect

__all__ = ["Document", "collect"]
