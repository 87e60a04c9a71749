"""Exporters of the moderation models (text: lexical stage, MiniLM classifier, route)."""
