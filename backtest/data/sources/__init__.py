"""The data vendors and formats the lake is filled from: one module per vendor, holding its parser and, where
it has one, its fetcher; :mod:`.registry` names them for ``backtest data import|fetch SOURCE``;
:mod:`.toolkit` is what every importer shares (reading, times, units, gaps, the checks before a write),
:mod:`.download` what every fetcher shares (retries, ``Retry-After``, resumable downloads, job folders),
:mod:`.commit` writes the checked series into the lake.

Importing twice gives the same lake; a malformed file is one DataError naming the file, column and row, and
nothing of that import is written.
"""
