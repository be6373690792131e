package engine_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/semisync/semisync/engine"
)

func ExampleStream() {
	ctx := context.Background()
	s := engine.NewStream[int](0) // unbuffered: each Send waits for its Recv

	go func() {
		for i := range 3 {
			if err := s.Send(ctx, nil, i*i); err != nil {
				return // the consumer released the stream
			}
		}
		s.Close(nil) // or s.Close(err) to report a failure after the items
	}()

	for {
		v, ok, err := s.Recv(ctx, nil)
		if !ok {
			fmt.Println("end:", err)
			break
		}
		fmt.Println(v)
	}
	// Output:
	// 0
	// 1
	// 4
	// end: <nil>
}

func ExampleStream_Release() {
	ctx := context.Background()
	s := engine.NewStream[int](0)
	stopped := make(chan error)
	go func() {
		for i := 0; ; i++ { // an endless producer
			if err := s.Send(ctx, nil, i); err != nil {
				stopped <- err
				return
			}
		}
	}()
	for {
		v, _, _ := s.Recv(ctx, nil)
		if v == 2 {
			break
		}
	}
	s.Release(errors.New("enough")) // like break in a for loop over a generator
	fmt.Println("producer stopped:", <-stopped)
	// Output: producer stopped: enough
}
