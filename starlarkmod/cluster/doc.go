// Package cluster runs a semisync script's portable work on NATS
// JetStream workers (DESIGN.md section 7): [Executor] implements
// starlarkmod.Remote for the script's side (`semisync --nats URL`), and
// [RunWorker] serves tasks (`semisync worker`).
//
// # What travels where
//
// One deployment is named by its work-queue stream (default
// [DefaultStream], "SEMISYNC_TASKS"); everything else is derived from it:
//
//   - SEMISYNC_TASKS, a work-queue stream on subjects
//     SEMISYNC_TASKS.tasks.<caller>.<call>: one message per chunk of a
//     batch, sized to the workers' runners (guidedChunk: a quarter of a
//     runner's share of the items left, down to one item at the end of a
//     batch (to 1/64 of it for a job whose batches come back quickly), so
//     that a job of slow items spreads over the workers to its last item; before any worker has answered, a batch
//     of up to 256 items goes one item per message and a larger one
//     makes at least 16 messages of up to 256 items), published with the
//     chunk's id as the JetStream message id
//     (a publish retried after a lost ack is dropped as a duplicate). All
//     workers share one durable pull consumer, "workers", with explicit
//     acks, a short AckWait and a MaxDeliver. A message carries the
//     function's hash, the per-item timeout, the caller's --seed and, per
//     item, its index, arguments and structural task hash; the items'
//     task ids stay with the caller, which deduplicates results by item.
//   - SEMISYNC_TASKS_CODE, an object store: the function's portable
//     encoding (by its sha256, RemoteBatch.FnSum) and the script texts it
//     names (by content hash), put once per caller and fetched once per
//     worker. Task messages carry only the hashes.
//   - SEMISYNC_TASKS_RESULTS, a limits stream (file storage, one hour) on
//     subjects SEMISYNC_TASKS.results.<caller>: workers publish each
//     chunk's results there (PublishAsync) and ack the task only once the
//     results are stored; the caller reads its subject with an ordered
//     consumer. Lines a task prints travel with its result and are printed
//     by the caller as "[worker] line" before the result is handed on.
//   - SEMISYNC_TASKS.cancel, a core subject: a cancelled call (Ctrl-C, a
//     job that failed) tells workers to stop its running items; the caller
//     also purges the call's subject, so its queued tasks never run.
//   - SEMISYNC_TASKS.workers, a core subject: callers ask, and each worker
//     answers with an instance id, its name and its concurrency
//     (presence.go). A server whose permissions leave it out still works:
//     callers then use the sizes for no answer.
//
// # Workers
//
// A worker ([RunWorker], `semisync worker`) runs each task message with
// [WorkerOptions.ExecBatch], which `semisync worker` sets to
// starlarkmod's Interpreter.ExecRemoteBatchLines: the function is decoded
// once per worker (cached by its hash) and the message's items run as the
// tasks of one run, one after the other, on a long-running engine worker
// loop, so a trivial item costs microseconds, not a run of its own.
// Concurrency runners each run one message at a time: Concurrency items
// run at once. Each item has the job's timeout; the lines it prints travel
// with its result (lines of a @future it started travel with the next
// result); with the caller's --seed each item draws the random numbers it
// draws locally. Results are published in groups, when an item finishes
// 100 ms or more after the last group and at the end of the message (each
// at once in a message delivered again), and the message is acked once
// they are stored. A worker pulls through one subscription
// (Subscription.FetchBatch) and fetches two messages per runner ahead; up
// to 16 while the messages it runs take under 5 ms and at least as many
// wait in the stream (such a pull does not wait: FetchNoWait); once one
// takes over 20 ms, one per runner ahead while 16 or more wait, and none
// after.
//
// Throughput, measured on a 2-core machine shared with other builds (load
// average 2-5), embedded server and two worker processes of concurrency 1
// on the same machine: 157k-252k trivial items/s end to end, 208k or more
// in four runs of five (BenchmarkClusterTrivial, 300k items), 7.5-9.0 µs
// of CPU per item summed over every process (caller, server, workers),
// about a fifth of it the server storing task and result messages; the
// transport alone
// (BenchmarkTransport) moves about 1M items/s. A CPU-bound job of 80
// items (BenchmarkClusterCPU: is_prime over range(1000000), the task
// functions compiled on the workers as in a local task) takes 1.82x less
// wall time on two worker processes than on one (median of the rounds in
// which both vCPUs of the 2-core machine ran at full speed; the README's
// Cluster section has the method and the figures).
//
// # Faults
//
// Delivery is at least once, and the caller keeps the first result of each
// item. A worker that dies (kill -9) loses its tasks for one AckWait
// (default 5 s), then they go to another worker; a running task sends
// in-progress acks every AckWait/2, so a slow task is not taken from a
// live worker. A task of one item delivered MaxDeliver times (default 4)
// without an ack fails with an error naming the function, the item and
// the task:
// the caller watches the consumer's MAX_DELIVERIES advisory, which the
// server sends one AckWait after the last delivery while some worker is
// pulling, and deletes the message, which a work-queue stream would keep.
// A message of several items is split instead (its first unfinished item
// alone, the rest together) and sent again, since which item killed the
// workers is not known; the culprit then fails alone. A server restart on the same store (file storage) loses nothing:
// clients reconnect, unacked tasks are delivered again, stored results are
// read. When a call makes no progress and no worker pulls from the stream,
// the caller says so on its Stderr, naming the stream.
//
// # Security
//
// A worker runs whatever its stream sends: connect workers only to a
// server where only trusted callers may publish (user and password in
// the URL, a .creds or NKey file, TLS: see [ConnectOptions]).
package cluster
