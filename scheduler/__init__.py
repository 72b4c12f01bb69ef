"""Timed jobs: the 催办 ladder, digests, statistics, spot checks, lease recovery."""
