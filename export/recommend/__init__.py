"""The recommendation route: catalogue, two-tower retrieval, feature tables, route model."""
