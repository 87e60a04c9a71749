"""The `moderate_text` route: `model.py` is the Triton model; `cascade.py` (validation,
band selection, audit) and `text_tokens.py` (MiniLM tokenisation) are its pure helpers."""
