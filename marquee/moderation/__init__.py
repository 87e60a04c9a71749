"""Moderation: the policy that turns scores into decisions, and the durable queue path."""
