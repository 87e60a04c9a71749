"""Route logic that runs inside Triton (Python BLS models), kept importable for unit tests."""
