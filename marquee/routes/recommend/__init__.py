"""The `recommend` route: `model.py` is the Triton model, `route_logic.py` its pure-numpy steps."""
