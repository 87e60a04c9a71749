"""The DCN-v2 ranker family: synthetic data, model, training, export."""
