"""Step 7: the check core — a signed statement and what was observed → every problem.

No file system, no network: :mod:`.plan` lays the statement over the files
found (what to read, and how), :mod:`.judge` turns what was read into
problems (:mod:`.compare` says what changed inside a weight file), and
:mod:`.decision` says once what a failure does (raise, warn or report).
:mod:`.facts` holds the values that cross between the reader and the core.
"""
