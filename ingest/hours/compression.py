"""How an hour's three files are compressed: xz's settings for the tweets, users and IDs.

Every file is plain ``.xz`` that any xz reads; only the encoder's effort differs from a bare
``xz -PRESET``, each choice measured on the bench hour (1 %: a 66 MB tweets CSV, 15 MB of
users, 4 MB of IDs; ``make bench``, README "Speed"):

- The tweets, the floor's own work, in equal blocks, one a thread (``tweets_block_size``).
  From preset 6 up xz searches each match with nice=64 and a match finder depth of 48;
  48 and 24 find nearly the same matches: 5 % less CPU in the two threads over the whole
  CSV (8 % in one over 8 MB) for a file 1.15 % larger, still no larger than ``xz -PRESET``
  on every core writes (whose 24 MiB blocks lose more).
- The users and IDs are small and their redundancy near (a row, the rows around it), so a
  small dictionary costs little: xz through a pipe allocates for the preset's dictionary
  whatever the input (-6: 8 MiB, ~100 MB of memory). Users: 1 MiB (14 MB of memory, 40 %
  less CPU, a file 1.9 % larger) and nice=32, depth=16 (15 % less again, 2.6 % larger
  again: their xz was a seventh of the floor's CPU); the sorted IDs 256 KiB (6 MB of
  memory, the same size). One thread each: their seconds overlap the tweets' xz.
"""

from __future__ import annotations

import os
from pathlib import Path

from ingest.atomic import XzWriter

MIB = 1 << 20

# xz's dictionary at each preset (xz(1)); the match finder takes ~11 times it in memory.
PRESET_DICT = (
    MIB // 4,
    MIB,
    2 * MIB,
    4 * MIB,
    4 * MIB,
    8 * MIB,
    8 * MIB,
    16 * MIB,
    32 * MIB,
    64 * MIB,
)
USERS_DICT = MIB
IDS_DICT = MIB // 4


TWEETS_SEARCH = {"nice": 48, "depth": 24}
USERS_SEARCH = {"nice": 32, "depth": 16}


def trimmed(preset: int, search: dict[str, int]) -> dict[str, int]:
    """``search`` over ``preset`` where it trims it: presets 6-9 search with nice=64, depth 48."""
    return search if preset >= 6 else {}


def tweets_block_size(csv_bytes: int, threads: int) -> int:
    """xz block size that cuts the hour's tweets CSV (about ``csv_bytes``) into a block a thread.

    xz -T compresses blocks independently, each block in one thread. Its default (24 MiB at -6)
    cut a 1 % hour into 24 + 24 + 14 MiB: each cut costs dictionary context (3.7 % larger than
    one block, measured) and the short last block leaves a core idle. Equal blocks, one per
    thread, keep every core busy to the end with the fewest cuts; 2 % extra so that the
    estimate's error makes no tiny last block. 64 MiB at most bounds xz's memory at the 10 %
    rate.
    """
    threads = threads or os.cpu_count() or 1  # 0: xz's one thread per core
    if threads == 1:
        return 0  # one thread: xz writes a single block anyway
    return int(min(64 * MIB, max(MIB, csv_bytes * 1.02 / threads)))


def tweets_writer(
    path: Path, preset: int, threads: int, csv_bytes: int, blocks: int | None = None
) -> XzWriter:
    """The tweets file's xz: ``blocks`` equal blocks (default one a thread) of ``csv_bytes``.

    The bytes depend on the blocks, not on the threads."""
    block = tweets_block_size(csv_bytes, threads if blocks is None else blocks)
    return XzWriter(path, preset, threads, block, lzma2=trimmed(preset, TWEETS_SEARCH))


def users_writer(path: Path, preset: int) -> XzWriter:
    return _small(path, preset, USERS_DICT, trimmed(preset, USERS_SEARCH))


def ids_writer(path: Path, preset: int) -> XzWriter:
    return _small(path, preset, IDS_DICT, {})


def _small(path: Path, preset: int, dict_size: int, search: dict[str, int]) -> XzWriter:
    lzma2 = {"dict": min(dict_size, PRESET_DICT[preset]), **search}
    return XzWriter(path, preset, 1, lzma2=lzma2)
