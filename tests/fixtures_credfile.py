"""Fixtures for the credentials-file editor."""
