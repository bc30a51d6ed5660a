"""``assets-attach backfill``: a manifest of (source, object) rows sent to a deployed stack as jobs, resumable.

``manifest`` reads and checks rows as a stream; ``grouping`` turns them into webhook requests; ``state`` is the
file next to the manifest that records each row's job; ``run`` sends, follows and reports; ``dry_run`` checks
every row without sending; ``prefix`` turns an S3 prefix into a manifest; ``progress`` shows how far it got.
"""
