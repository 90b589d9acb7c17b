"""Stage 4: production, API keys and roles, audit trail, drift monitoring, zero-downtime deploy and rollback."""

__version__ = "4.0.0"  # typed by a person: MAJOR.MINOR.PATCH of the service, not of the model
