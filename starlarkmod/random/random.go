// Package random is the random module of semisync scripts, after
// Python's: load("random", "random", "randint").
//
//	random()          a float in [0, 1)
//	randint(a, b)     an int in [a, b]
//	uniform(a, b)     a float in [a, b]
//	choice(seq)       an element of a non-empty sequence
//	shuffle(list)     shuffles a list in place
//	seed(n)           re-seeds the running task's generator
//
// Each task draws from a generator of its own, which the host supplies
// per thread through [SetSource]: semisync seeds it from the run's seed
// and the task's structural identity (its parent task and its number among
// the parent's tasks), so with --seed a script draws the same numbers on
// every run, in parallel and in sequential mode, however its tasks are
// scheduled. A thread without a source draws from a generator of its own,
// seeded at random.
package random

import (
	"fmt"
	"math/rand/v2"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Module is the random module.
var Module = &starlarkstruct.Module{
	Name: "random",
	Members: starlark.StringDict{
		"random":  starlark.NewBuiltin("random.random", randomRandom),
		"randint": starlark.NewBuiltin("random.randint", randomRandint),
		"uniform": starlark.NewBuiltin("random.uniform", randomUniform),
		"choice":  starlark.NewBuiltin("random.choice", randomChoice),
		"shuffle": starlark.NewBuiltin("random.shuffle", randomShuffle),
		"seed":    starlark.NewBuiltin("random.seed", randomSeed),
	},
}

// A Source gives a thread the generator of the task it runs. Its methods
// are called only on the thread's own goroutine.
type Source interface {
	// Rand returns the running task's generator.
	Rand() *rand.Rand
	// Reseed replaces the running task's generator by one seeded with n.
	Reseed(n int64)
}

const localSource = "random.source"

// SetSource sets th's source of generators. Call it before th runs code.
func SetSource(th *starlark.Thread, s Source) { th.SetLocal(localSource, s) }

// own is the source of a thread without one.
type own struct{ r *rand.Rand }

func (o *own) Rand() *rand.Rand {
	if o.r == nil {
		o.r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return o.r
}

func (o *own) Reseed(n int64) { o.r = NewSeeded(n) }

// NewSeeded returns the generator that seed(n) installs, for sources
// implementing Reseed: the same n gives the same numbers everywhere.
func NewSeeded(n int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(n), 0x5e3d)) }

func source(th *starlark.Thread) Source {
	if s, ok := th.Local(localSource).(Source); ok {
		return s
	}
	s := &own{}
	th.SetLocal(localSource, s)
	return s
}

func rng(th *starlark.Thread) *rand.Rand { return source(th).Rand() }

func randomRandom(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return starlark.Float(rng(th).Float64()), nil
}

func randomRandint(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var lo, hi int64
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &lo, &hi); err != nil {
		return nil, err
	}
	if hi < lo {
		return nil, fmt.Errorf("%s: empty range [%d, %d]", b.Name(), lo, hi)
	}
	return starlark.MakeInt64(lo + rng(th).Int64N(hi-lo+1)), nil
}

func randomUniform(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var lo, hi starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &lo, &hi); err != nil {
		return nil, err
	}
	a, ok1 := starlark.AsFloat(lo)
	z, ok2 := starlark.AsFloat(hi)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s: got %s and %s, want numbers", b.Name(), lo.Type(), hi.Type())
	}
	return starlark.Float(a + (z-a)*rng(th).Float64()), nil
}

func randomChoice(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var seq starlark.Indexable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &seq); err != nil {
		return nil, err
	}
	n := seq.Len()
	if n == 0 {
		return nil, fmt.Errorf("%s: empty sequence", b.Name())
	}
	return seq.Index(rng(th).IntN(n)), nil
}

func randomShuffle(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var l *starlark.List
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &l); err != nil {
		return nil, err
	}
	var err error
	rng(th).Shuffle(l.Len(), func(i, j int) {
		if err != nil {
			return
		}
		x, y := l.Index(i), l.Index(j)
		if err = l.SetIndex(i, y); err == nil {
			err = l.SetIndex(j, x)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

func randomSeed(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var n int64
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &n); err != nil {
		return nil, err
	}
	source(th).Reseed(n)
	return starlark.None, nil
}
