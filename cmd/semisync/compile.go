package main

import "flag"

// registerCompileFlags registers --no-compile on fs (see
// starlarkmod.Options.NoCompile).
func registerCompileFlags(fs *flag.FlagSet, c *config) {
	fs.BoolVar(&c.opts.NoCompile, "no-compile", false, "run all script functions on the Starlark VM instead of compiling the functions that run as tasks (slower; for comparison)")
}
