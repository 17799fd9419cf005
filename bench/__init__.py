"""Benchmark harness for logto-shipper (see bench/README.md)."""
