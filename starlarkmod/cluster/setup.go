package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStream is the name of the work-queue stream that callers and
// workers share when none is given.
const DefaultStream = "SEMISYNC_TASKS"

// Defaults of the workers' consumer (see [WorkerOptions]).
const (
	DefaultAckWait    = 5 * time.Second
	DefaultMaxDeliver = 4
)

// consumerName is the durable pull consumer every worker of a stream
// shares (a work-queue stream allows one consumer per subject).
const consumerName = "workers"

// names are the JetStream objects and subjects of one deployment, all
// derived from the tasks stream's name so deployments never mix.
type names struct {
	tasks   string // work-queue stream; subjects <tasks>.tasks.<client>.<call>
	results string // limits stream; subjects <tasks>.results.<client>
	code    string // object store: function encodings and file texts by sha256 hex
	cancel  string // core subject: "<client> <call>" cancels that call's items
	workers string // core subject: workers answer with their concurrency (presence.go)
	advisor string // MAX_DELIVERIES advisory of the workers' consumer
}

func newNames(stream string) (names, error) {
	if stream == "" {
		stream = DefaultStream
	}
	for _, r := range stream {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return names{}, fmt.Errorf("stream name %q: use letters, digits, _ and - only", stream)
		}
	}
	return names{
		tasks:   stream,
		results: stream + "_RESULTS",
		code:    stream + "_CODE",
		cancel:  stream + ".cancel",
		workers: stream + ".workers",
		advisor: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + "." + consumerName,
	}, nil
}

func (n names) taskSubject(client string, call uint64) string {
	return n.tasks + ".tasks." + client + "." + strconv.FormatUint(call, 10)
}
func (n names) clientTasks(client string) string   { return n.tasks + ".tasks." + client + ".>" }
func (n names) resultSubject(client string) string { return n.tasks + ".results." + client }

// setup creates the deployment's streams and code store if they do not
// exist (callers and workers both call it; whoever comes first creates).
func (n names) setup(ctx context.Context, js jetstream.JetStream) (tasks, results jetstream.Stream, code jetstream.ObjectStore, err error) {
	tasks, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        n.tasks,
		Description: "semisync tasks (work queue)",
		Subjects:    []string{n.tasks + ".tasks.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	results, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        n.results,
		Description: "semisync task results, read by the caller that sent the tasks",
		Subjects:    []string{n.tasks + ".results.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      time.Hour,
		Duplicates:  time.Minute,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	code, err = js.ObjectStore(ctx, n.code)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		code, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      n.code,
			Description: "semisync function encodings and script texts, by sha256",
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			code, err = js.ObjectStore(ctx, n.code)
		}
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("object store %s: %w", n.code, err)
	}
	return tasks, results, code, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// ConnectOptions are the standard NATS credentials and TLS files. A user
// and password can also be given in the URL (nats://user:pass@host:4222),
// and a tls:// URL turns TLS on with the system's roots.
type ConnectOptions struct {
	Name      string // the connection's name, shown by the server's monitoring
	CredsFile string // a .creds file (JWT and NKey seed)
	NKeyFile  string // an NKey seed file
	TLSCA     string // PEM file of the CAs that sign the server's certificate
	TLSCert   string // PEM client certificate, with TLSKey, for mutual TLS
	TLSKey    string
	// Retry keeps trying when the server cannot be reached at first
	// (workers started before their server); otherwise Connect fails.
	Retry bool
}

// Connect opens a NATS connection that reconnects forever (a server
// restart loses nothing: see the package doc).
func Connect(url string, o ConnectOptions) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
	}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.Retry {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", Redact(url), err)
	}
	return nc, nil
}

// Redact returns url with any password replaced by "xxxxx", for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ServeOptions configure an embedded NATS server with JetStream.
type ServeOptions struct {
	// Addr is host:port to listen on ("127.0.0.1:4222"; port 0 picks one).
	Addr string
	// StoreDir holds JetStream's files (tasks survive a restart).
	StoreDir string
	// ConfigFile, if set, is a nats-server configuration file (accounts,
	// users, TLS...); Addr and StoreDir override its listen and store_dir.
	ConfigFile string
}

// Serve starts an embedded NATS server with JetStream and file storage
// and returns it once it accepts connections. The caller stops it with
// Shutdown and WaitForShutdown, after closing its own connections.
func Serve(o ServeOptions) (*server.Server, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, err
		}
	}
	if o.Addr != "" {
		host, port, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return nil, fmt.Errorf("--serve %s: %w", o.Addr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("--serve %s: bad port", o.Addr)
		}
		opts.Host, opts.Port = host, p
		if p == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	opts.JetStream = true
	if o.StoreDir != "" {
		opts.StoreDir = o.StoreDir
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	s.Start()
	for deadline := time.Now().Add(10 * time.Second); !s.ReadyForConnections(5 * time.Millisecond); {
		if time.Now().After(deadline) {
			s.Shutdown()
			s.WaitForShutdown()
			return nil, errors.New("the embedded NATS server did not start within 10s")
		}
	}
	return s, nil
}
