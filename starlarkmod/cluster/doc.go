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
//     batch (up to 64 items; a batch of n items makes at least
//     min(n, 16) messages so that short jobs of slow items spread over
//     workers), published with the chunk's id as the JetStream message id
//     (a publish retried after a lost ack is dropped as a duplicate). All
//     workers share one durable pull consumer, "workers", with explicit
//     acks, a short AckWait and a MaxDeliver.
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
//
// # Faults
//
// Delivery is at least once, and the caller keeps the first result of each
// item. A worker that dies (kill -9) loses its tasks for one AckWait
// (default 5 s), then they go to another worker; a running task sends
// in-progress acks every AckWait/2, so a slow task is not taken from a
// live worker. A task delivered MaxDeliver times (default 4) without an
// ack fails with an error naming the function, the item and the task:
// the caller watches the consumer's MAX_DELIVERIES advisory, which the
// server sends one AckWait after the last delivery while some worker is
// pulling, and deletes the message, which a work-queue stream would keep.
// A server restart on the same store (file storage) loses nothing:
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
