"""Operator tools over what was shipped: search, prune of Logto's table, Kibana objects."""
