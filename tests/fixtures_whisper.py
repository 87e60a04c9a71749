"""Session fixtures for the whisper area (a pytest plugin registered in tests/conftest.py)."""
