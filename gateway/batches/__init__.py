"""OpenAI's Files and Batch API on the gateway: uploads, background jobs on the Ray cluster.

A request goes ``routes`` (HTTP, auth) -> ``service`` (ownership, validation) ->
``store`` (Redis metadata) and ``files`` (bytes on disk). Jobs run apart from requests:

    settings    GATEWAY_BATCHES__*: files directory, limits, leases, the Serve app
    objects     files and batches as stored and as OpenAI shows them
    store       metadata, status changes (transition.lua) and job leases in Redis
    files       file bytes on disk; the multipart upload read within its limits
    clock       the time every timestamp and deadline is read from
    supervisor  which jobs this process runs (leases renewed while they run)
    sweeper     overdue batches nobody runs expired, expired files purged
    expiry      expires_after policies; the batch_expired lines of an expired batch
    jobs        one job: validate, ``batch.runner.run_batch`` in a thread, finalize
    guard       the engine wrapper that charges, cancels and stops a run between blocks
    charges     the journal's tokens charged to the key's day exactly once (reconciled)
    tally       counts from the output journal; its split into output and error files
    finalize    the end of a job: output files, final status
    planner     lines routed like gateway requests of the batch's key
    engine      the default engines: the Serve app's deployments via Ray Data LLM
    lifecycle   assembling all of it for one app
"""
