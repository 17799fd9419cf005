"""File identity: device + inode, confirmed by a hash of the file's first bytes.

The hash covers ``min(size, limit)`` bytes and grows with the file up to ``limit``, so small
files are identified (and shipped) too. An inode reused by a new file fails the hash check.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fingerprint:
    length: int
    digest: str

    @classmethod
    def of(cls, fd: int, limit: int) -> Fingerprint:
        head = os.pread(fd, limit, 0)
        return cls(len(head), hashlib.blake2b(head, digest_size=16).hexdigest())

    def matches(self, fd: int) -> bool:
        """Does the file open at ``fd`` start with the bytes this fingerprint was taken of?"""
        head = os.pread(fd, self.length, 0)
        return len(head) == self.length and (hashlib.blake2b(head, digest_size=16).hexdigest() == self.digest)
