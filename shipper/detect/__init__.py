"""Detections on the normalized stream: sliding windows over the documents the pipeline builds,
turned into alerts (issue 24).

Data flows one way: ``signals.read`` takes a document (a dict, as the normalizer wrote it) to a
``Signal`` (the few fields rules look at), ``rules.Detector.observe`` feeds it to every rule's
windows (``windows.Windows``: per entity, bounded in keys with least-recently-seen eviction) and
returns the ``Alert`` s that crossed a threshold, one per rule and entity per window.
"""
