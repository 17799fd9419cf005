from shipper.sources.file.source import FileSource

__all__ = ["FileSource"]
