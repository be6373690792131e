package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/semisync/semisync/starlarkmod"
	"github.com/semisync/semisync/starlarkmod/cluster"
)

// natsFlags are the flags that connect to a NATS server, shared by the
// main command (--nats: run portable work on the cluster) and the worker.
type natsFlags struct {
	url, stream            string
	creds, nkey            string
	tlsCA, tlsCert, tlsKey string
}

func addNATSFlags(fs *flag.FlagSet) *natsFlags {
	f := &natsFlags{}
	fs.StringVar(&f.url, "nats", "", "run job items, @semisync and @future calls on the workers of the NATS JetStream server at `URL` (nats://[user:password@]host:4222)")
	fs.StringVar(&f.stream, "nats-stream", cluster.DefaultStream, "the JetStream work-queue `STREAM` that callers and workers share")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials `FILE` (JWT and NKey seed)")
	fs.StringVar(&f.nkey, "nats-nkey", "", "NATS NKey seed `FILE`")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "PEM `FILE` of the CAs that sign the NATS server's certificate")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "PEM client certificate `FILE` for mutual TLS (with --nats-tls-key)")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "PEM client key `FILE` for mutual TLS")
	return f
}

func (f *natsFlags) connectOptions(name string, retry bool) cluster.ConnectOptions {
	return cluster.ConnectOptions{Name: name, CredsFile: f.creds, NKeyFile: f.nkey,
		TLSCA: f.tlsCA, TLSCert: f.tlsCert, TLSKey: f.tlsKey, Retry: retry}
}

// registerClusterFlags defines --nats and its credentials on the main
// command: with --nats, a hook connects an executor before the script runs
// (its portable work goes to the cluster) and closes it after.
func registerClusterFlags(fs *flag.FlagSet, c *config) {
	nf := addNATSFlags(fs)
	natsCache := fs.Bool("nats-cache", false, "with --nats, cache the results of pure calls in the cluster's JetStream object store, shared by every caller (instead of --cache DIR)")
	var e *cluster.Executor
	c.hooks = append(c.hooks, hook{
		before: func(c *config) error {
			if nf.url == "" {
				if *natsCache {
					return errors.New("--nats-cache needs --nats URL")
				}
				return nil
			}
			if *natsCache && c.opts.Cache != nil {
				return errors.New("use one of --cache and --nats-cache")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var err error
			e, err = cluster.Dial(ctx, nf.url, nf.connectOptions("semisync", false), cluster.Options{
				Stream: nf.stream,
				Stdout: c.stdout,
				Stderr: c.stderr,
			})
			if err != nil {
				return fmt.Errorf("--nats: %w", err)
			}
			c.opts.Remote = e
			if *natsCache {
				oc, err := e.Cache(ctx, 0)
				if err != nil {
					return fmt.Errorf("--nats-cache: %w", err)
				}
				c.opts.Cache, c.opts.CacheAll = oc, true
			}
			return nil
		},
		after: func(_ *config, _ *starlarkmod.Run, err error) error {
			if e != nil {
				e.Close() //nolint:errcheck // nothing to do about it at exit
				e = nil
			}
			return err
		},
	})
}

// runWorker is the "worker" subcommand.
func runWorker(c *config, args []string) int { return workerMain(args, c.stdout, c.stderr) }

const workerUsage = `usage: semisync worker --nats URL [flags]
       semisync worker --serve ADDR [flags]

Runs the tasks that "semisync --nats URL script.star" sends: job items,
@semisync and @future calls. A worker runs whatever its stream sends:
connect it only to a server that only trusted callers can publish to.

flags:
`

// workerMain is "semisync worker": it serves a stream until SIGTERM or
// Ctrl-C, then finishes or hands back the tasks it holds and exits 0.
func workerMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("semisync worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs)
	concurrency := fs.Int("concurrency", runtime.NumCPU(), "run `N` task items at once (job items, @semisync and @future calls)")
	name := fs.String("name", "", "the worker's `NAME`, shown before the lines its tasks print (default host-pid)")
	serve := fs.String("serve", "", "also start an embedded NATS server with JetStream on `ADDR` (host:port); without --nats, the worker uses it")
	serveConfig := fs.String("serve-config", "", "nats-server configuration `FILE` for --serve (users, accounts, TLS)")
	store := fs.String("store", "", "JetStream storage `DIR` for --serve (default: the user cache dir's semisync/jetstream)")
	ackWait := fs.Duration("ack-wait", cluster.DefaultAckWait, "how long a task held by a dead worker waits before another worker gets it")
	maxDeliver := fs.Int("max-deliver", cluster.DefaultMaxDeliver, "fail a task after `N` deliveries (each worker that ran it died)")
	maxSteps := fs.Uint64("max-steps", 0, "limit each task to `N` Starlark steps (0: no limit)")
	fs.Usage = func() {
		fmt.Fprint(stderr, workerUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || (nf.url == "" && *serve == "") {
		fs.Usage()
		return 2
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		cancel()
		if _, ok := <-sigs; ok {
			fmt.Fprintln(stderr, "semisync worker: stopped twice, exiting now")
			os.Exit(130)
		}
	}()

	if *serve != "" {
		dir := *store
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				cache = os.TempDir()
			}
			dir = filepath.Join(cache, "semisync", "jetstream")
		}
		s, err := cluster.Serve(cluster.ServeOptions{Addr: *serve, StoreDir: dir, ConfigFile: *serveConfig})
		if err != nil {
			fmt.Fprintf(stderr, "semisync: --serve: %v\n", err)
			return 1
		}
		defer func() { s.Shutdown(); s.WaitForShutdown() }()
		if host, _, _ := net.SplitHostPort(*serve); *serveConfig == "" && !isLoopback(host) {
			fmt.Fprintf(stderr, "semisync worker: warning: the NATS server on %s has no authentication: anyone who can reach it can run code on its workers (use --serve-config)\n", *serve)
		}
		fmt.Fprintf(stderr, "semisync worker: NATS server with JetStream listening on %s (store %s)\n", s.ClientURL(), dir)
		if nf.url == "" {
			nf.url = s.ClientURL()
		}
	}
	nc, err := cluster.Connect(nf.url, nf.connectOptions("semisync worker "+*name, true))
	if err != nil {
		fmt.Fprintf(stderr, "semisync: --nats: %v\n", err)
		return 1
	}
	defer nc.Close()
	in := starlarkmod.New(starlarkmod.Options{Stdout: stderr, Stderr: stderr, MaxSteps: *maxSteps})
	defer in.Close()
	err = cluster.RunWorker(ctx, nc, cluster.WorkerOptions{
		Stream:      nf.stream,
		Name:        *name,
		Concurrency: *concurrency,
		AckWait:     *ackWait,
		MaxDeliver:  *maxDeliver,
		ExecBatch:   in.ExecRemoteBatchLines,
		Log:         stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "semisync worker: %v\n", err)
		return 1
	}
	return 0
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
