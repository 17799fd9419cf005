"""The ``logto-shipper`` command line (Click)."""
