"""SQLAlchemy models, repositories, unit of work, outbox and inbox; the only place that speaks SQL."""
