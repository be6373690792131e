package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/semisync/semisync/starlarkmod"
)

// cacheFlags are the result cache's flags: --cache DIR and --cache-max SIZE.
type cacheFlags struct {
	fs    *flag.FlagSet
	dir   string
	max   sizeFlag
	store *starlarkmod.DirCache
}

// registerCacheFlags adds the result cache's flags to fs, and the hooks
// that open the cache directory before the run and print its counts (with
// --summary) and close it after.
func registerCacheFlags(fs *flag.FlagSet, c *config) {
	cf := newCacheFlags(fs)
	c.hooks = append(c.hooks, hook{
		before: func(c *config) error {
			if err := cf.open(); err != nil {
				return err
			}
			c.opts = cf.apply(c.opts)
			return nil
		},
		after: func(c *config, r *starlarkmod.Run, err error) error {
			// The counts, with --summary, for any store (--cache or --nats-cache).
			if f := fs.Lookup("summary"); f != nil && f.Value.String() == "true" && r != nil && c.opts.Cache != nil {
				fmt.Fprintln(c.stderr, r.CacheStats())
			}
			cf.finish(c.stderr)
			return err
		},
	})
}

// newCacheFlags adds the result cache's flags to fs.
func newCacheFlags(fs *flag.FlagSet) *cacheFlags {
	c := &cacheFlags{fs: fs}
	fs.StringVar(&c.dir, "cache", "", "cache the results of pure calls in `DIR`, shared by runs and processes (--cache= for the default: semisync in the user's cache directory, e.g. ~/.cache/semisync)")
	fs.Var(&c.max, "cache-max", "cap the --cache directory at `SIZE` bytes (suffix K, M or G; default 1G), evicting the least recently used results")
	return c
}

func defaultCacheDirDoc() string {
	if d, err := starlarkmod.DefaultCacheDir(); err == nil {
		return d
	}
	return "semisync under the user's cache directory"
}

// given reports whether --cache was on the command line (even empty).
func (c *cacheFlags) given() bool {
	given := false
	c.fs.Visit(func(f *flag.Flag) { given = given || f.Name == "cache" })
	return given
}

// open opens the cache directory if --cache was given.
func (c *cacheFlags) open() error {
	if !c.given() {
		return nil
	}
	dir := c.dir
	if dir == "" {
		d, err := starlarkmod.DefaultCacheDir()
		if err != nil {
			return fmt.Errorf("--cache: %w", err)
		}
		dir = d
	}
	s, err := starlarkmod.OpenDirCache(dir, int64(c.max))
	if err != nil {
		return fmt.Errorf("--cache %s: %w", dir, err)
	}
	c.store = s
	return nil
}

// apply sets the interpreter's cache options: with --cache, every
// provably pure call is cached.
func (c *cacheFlags) apply(opts starlarkmod.Options) starlarkmod.Options {
	if c.store != nil {
		opts.Cache = c.store
		opts.CacheAll = true
	}
	return opts
}

// finish closes the cache directory, if one was opened.
func (c *cacheFlags) finish(stderr io.Writer) {
	if c.store == nil {
		return
	}
	if err := c.store.Close(); err != nil {
		fmt.Fprintf(stderr, "semisync: cache: %v\n", err)
	}
	c.store = nil
}

// sizeFlag is a byte count with an optional K, M or G suffix (powers of 1024).
type sizeFlag int64

func (s *sizeFlag) String() string {
	if s == nil || *s == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*s), 10)
}

func (s *sizeFlag) Set(v string) error {
	mult := int64(1)
	t := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(v, "B"), "b"))
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return errors.New("want a positive number of bytes, e.g. 500M or 2G")
	}
	*s = sizeFlag(n * mult)
	return nil
}

const cacheUsage = `usage: semisync cache stats [--cache DIR]
       semisync cache clear [--cache DIR]

stats prints the number of results stored in the cache directory, their
size, the size cap, and the hits and misses of the runs that used it since
it was last cleared. clear removes every stored result. DIR defaults to
`

// cacheCommand runs "semisync cache stats|clear [--cache DIR]".
func cacheCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("semisync cache", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := newCacheFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, cacheUsage+defaultCacheDirDoc()+".\n\nflags:\n")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "stats" && args[0] != "clear" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return 0
		}
		fs.Usage()
		return 2
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "semisync: cache %s: unexpected argument %q\n", verb, fs.Arg(0))
		return 2
	}
	if !c.given() {
		c.dir = ""            // the default directory
		c.fs.Set("cache", "") //nolint:errcheck // a string flag takes any value
	}
	if err := c.open(); err != nil {
		fmt.Fprintf(stderr, "semisync: %v\n", err)
		return 1
	}
	store := c.store
	defer store.Close()
	switch verb {
	case "stats":
		st, err := store.Stats()
		if err != nil {
			fmt.Fprintf(stderr, "semisync: cache stats: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "directory: %s\nentries:   %d\npacks:     %d\nbytes:     %d (%s) of %s\nhits:      %d\nmisses:    %d\n",
			st.Dir, st.Entries, st.Packs, st.Bytes, human(st.Bytes), human(st.MaxBytes), st.Hits, st.Misses)
	case "clear":
		st, _ := store.Stats()
		if err := store.Clear(); err != nil {
			fmt.Fprintf(stderr, "semisync: cache clear: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed %d entries (%s) from %s\n", st.Entries, human(st.Bytes), st.Dir)
	}
	return 0
}

// human renders a byte count with a binary unit.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
