package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/semisync/semisync/starlarkmod"
)

// observeFlags are --trace, --graph and --summary (see starlarkmod.Observer).
type observeFlags struct {
	trace, graph string
	summary      bool
	obs          *starlarkmod.Observer
	traceFile    *os.File // open from before the run: the trace streams to it
}

// registerObserveFlags adds the flags to fs and the hooks that make the
// observer before the run and write what it saw after it (REPL included).
func registerObserveFlags(fs *flag.FlagSet, c *config) {
	f := &observeFlags{}
	fs.StringVar(&f.trace, "trace", "", "write a Chrome trace-event JSON of every task to `FILE` (open it in Perfetto or chrome://tracing)")
	fs.StringVar(&f.graph, "graph", "", "write every semisync graph that ran, with status, durations and the critical path, to `FILE` (.dot: Graphviz, .mmd: Mermaid)")
	fs.BoolVar(&f.summary, "summary", false, "print a table of the functions that ran (calls, total, mean, max, failures) and the critical path on stderr at the end")
	c.hooks = append(c.hooks, hook{
		before: func(c *config) error {
			obs, err := f.observer()
			c.opts.Observer = obs
			return err
		},
		after: func(c *config, _ *starlarkmod.Run, err error) error {
			return errors.Join(err, f.write(c.stderr))
		},
	})
}

// observer returns the observer to pass in starlarkmod.Options (nil if no
// flag asks for one), or a usage error.
func (f *observeFlags) observer() (*starlarkmod.Observer, error) {
	if f.graph != "" {
		if _, err := graphFormat(f.graph); err != nil {
			return nil, err
		}
	}
	if f.trace != "" || f.graph != "" || f.summary {
		f.obs = starlarkmod.NewObserver()
	}
	if f.trace != "" {
		// The trace is formatted and written as the run goes, on a core
		// the run leaves idle (starlarkmod.Observer.StreamTrace).
		file, err := os.Create(f.trace)
		if err == nil {
			if err = f.obs.StreamTrace(file); err != nil {
				file.Close()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("--trace: %w", err)
		}
		f.traceFile = file
	}
	return f.obs, nil
}

func graphFormat(path string) (string, error) {
	switch filepath.Ext(path) {
	case ".dot", ".gv":
		return "dot", nil
	case ".mmd":
		return "mmd", nil
	}
	return "", fmt.Errorf("--graph %s: the file name must end in .dot (Graphviz) or .mmd (Mermaid)", path)
}

// write writes what the flags asked for, after the run, whether it
// failed or not.
func (f *observeFlags) write(stderr io.Writer) error {
	if f.obs == nil {
		return nil
	}
	var errs []error
	if f.summary {
		errs = append(errs, f.obs.WriteSummary(stderr))
	}
	if f.traceFile != nil {
		err := f.obs.WriteTrace(f.traceFile)
		if cerr := f.traceFile.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("semisync: --trace: %w", err))
		}
	}
	if f.graph != "" {
		format, _ := graphFormat(f.graph)
		errs = append(errs, writeFile(f.graph, "--graph", func(w io.Writer) error { return f.obs.WriteGraph(w, format) }))
	}
	return errors.Join(errs...)
}

func writeFile(path, flag string, write func(io.Writer) error) error {
	file, err := os.Create(path)
	if err == nil {
		err = write(file)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("semisync: %s: %w", flag, err)
	}
	return nil
}
