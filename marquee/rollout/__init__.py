"""Ranker experiments: the experiment file, model control and `marquee rollout`."""
