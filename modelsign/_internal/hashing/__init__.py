"""Step 3 of the data flow: read every byte of the model once and digest it.

- ``algorithms``: the digest algorithms (tensor, header and range hashes);
- ``reading``: chunked reads of an open model file, and noticing it change;
- ``segments``: a weight file's header, tensor and padding segments, digested
  as its chunks stream by;
- ``files``: one read per file → file, header and tensor digests (``hash_file``,
  ``hash_files``), or a header-only look (``peek_file``);
- ``ranges``: independent byte ranges on all cores (verification, loaders);
- ``shards``: OMS shard digests.
"""

from .algorithms import (
    TENSOR_HASHES,
    RangeHash,
    TensorHash,
    digest_bytes,
    new_hasher,
)
from .files import PEEK_WHOLE, FileDigests, hash_file, hash_files, peek_file
from .ranges import RangeJob, hash_ranges
from .reading import changed_since, pread_all, stream_digest
from .shards import SHARD_BATCH, hash_shards

__all__ = [
    "PEEK_WHOLE",
    "SHARD_BATCH",
    "TENSOR_HASHES",
    "FileDigests",
    "RangeHash",
    "RangeJob",
    "TensorHash",
    "changed_since",
    "digest_bytes",
    "hash_file",
    "hash_files",
    "hash_ranges",
    "hash_shards",
    "new_hasher",
    "peek_file",
    "pread_all",
    "stream_digest",
]
