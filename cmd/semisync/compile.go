package main

import "flag"

// compileFlag registers --no-compile on fs (see starlarkmod.Options.NoCompile).
func compileFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("no-compile", false, "run all script functions on the Starlark VM instead of compiling the functions that run as tasks (slower; for comparison)")
}
