package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFIFO(t *testing.T) {
	for _, n := range []int{0, 1, blockSize - 1, blockSize, blockSize + 1, 3*blockSize + 7} {
		var q fifo[int]
		next := 0
		// Interleave pushes and pops so blocks are drained, recycled and
		// reused at every boundary.
		for i := 0; i < n; i++ {
			q.push(i)
			if i%3 == 2 {
				v, ok := q.pop()
				require.True(t, ok)
				require.Equal(t, next, v)
				next++
			}
		}
		assert.Equal(t, n-next, q.len())
		all := q.takeAll()
		assert.Equal(t, 0, q.len())
		_, ok := q.pop()
		assert.False(t, ok)
		for v, ok := all.pop(); ok; v, ok = all.pop() {
			require.Equal(t, next, v)
			next++
		}
		assert.Equal(t, n, next)
		q.push(42) // still usable after takeAll
		v, ok := q.pop()
		assert.True(t, ok)
		assert.Equal(t, 42, v)
	}
}
