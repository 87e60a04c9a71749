"""Session fixtures for the audio area (a pytest plugin registered in tests/conftest.py)."""
