"""Stage 2: the shared internal tool, a REST API in a Docker image."""

__version__ = "2.0.0"  # typed by a person: MAJOR.MINOR.PATCH of the service, not of the model
