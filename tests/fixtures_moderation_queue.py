"""Session fixtures for the moderation queue area (a pytest plugin registered in tests/conftest.py)."""
