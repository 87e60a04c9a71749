"""Session fixtures for the moderation text area (a pytest plugin registered in tests/conftest.py)."""
