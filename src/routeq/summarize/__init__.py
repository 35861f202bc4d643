"""Summarization's domain, apart from the batch job's I/O: splitting a document into parts that
fit a tier (``chunking``), planning the map and the reduce (``mapreduce``). The spec and the
task types live with the configuration (``routeq.summary_spec``); the checks of a summary with
the judges (``routeq.judges.summary``). Pure: no database, broker or files."""
