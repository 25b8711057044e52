"""``omedicom batch`` and ``omedicom verify``: whole archives, resumable, verified with SHA-256.

* :mod:`.tasks` - the task list, from a CSV file or a folder walk;
* :mod:`.ledger` - each task's state in SQLite beside the output;
* :mod:`.manifest` - ``<DST>.sha256.json``: frame, file and source hashes;
* :mod:`.verify` - compare a manifest with a folder or a DICOMweb server (WADO-RS);
* :mod:`.work` - one task in a worker: convert, check, manifest, push, verify;
* :mod:`.runner` - the pool (local processes, or a Dask distributed cluster);
* :mod:`.progress`, :mod:`.report` - the overall bar and the final CSV/JSON report.
"""
