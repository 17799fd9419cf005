"""logto-shipper: ship Logto audit logs into Elasticsearch and search them."""

__version__ = "0.1.0"
