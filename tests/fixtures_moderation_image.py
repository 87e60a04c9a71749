"""Session fixtures for the moderation image area (a pytest plugin registered in tests/conftest.py)."""
