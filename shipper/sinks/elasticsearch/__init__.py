"""The ``elasticsearch`` output."""

from shipper.sinks.elasticsearch.sink import ElasticsearchSink

__all__ = ["ElasticsearchSink"]
