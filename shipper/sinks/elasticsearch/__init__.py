"""The ``elasticsearch`` output: client, ``_bulk`` framing, delivery, index names, setup.

The package imports nothing itself: normalizer workers unpickle its framer without loading the
client."""
