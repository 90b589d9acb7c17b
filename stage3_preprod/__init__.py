"""Stage 3: pre-production, batch and stream ingestion, inference log, model versions, metrics."""

__version__ = "3.0.0"  # typed by a person: MAJOR.MINOR.PATCH of the service, not of the model
