package cache

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"syscall"
	"time"
)

// On Linux, entries are read and written with plain system calls: os.Open
// and os.CreateTemp also try to register each file with the runtime's
// poller (two or three more system calls, which cost as much as the read
// itself on a virtual machine).

// fileStat is what a reader learns of an entry file it opened.
type fileStat struct {
	dev, ino uint64
	mod      time.Time
}

// readFile reads the regular file at p whole.
func readFile(p string) ([]byte, fileStat, error) {
	var st fileStat
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, st, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	var s syscall.Stat_t
	if err := syscall.Fstat(fd, &s); err != nil {
		return nil, st, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	if s.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, st, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("not a regular file")}
	}
	st = fileStat{dev: uint64(s.Dev), ino: s.Ino, mod: time.Unix(s.Mtim.Sec, s.Mtim.Nsec)}
	b := make([]byte, s.Size)
	for off := 0; off < len(b); {
		n, err := syscall.Read(fd, b[off:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, st, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return b[:off], st, nil // shrunk since the stat: the checks catch it
		}
		off += n
	}
	return b, st, nil
}

// sameFile reports whether p is still the file a reader read.
func sameFile(p string, st fileStat) bool {
	var s syscall.Stat_t
	if err := syscall.Lstat(p, &s); err != nil {
		return false
	}
	return uint64(s.Dev) == st.dev && s.Ino == st.ino
}

// writeAtomic writes b to name through a temporary file in dir renamed
// over it.
func writeAtomic(dir, name string, b []byte) error {
	var tmp string
	fd := -1
	for try := 0; ; try++ {
		tmp = fmt.Sprintf("%s/%s%d-%x", dir, tmpPrefix, os.Getpid(), rand.Uint64())
		var err error
		fd, err = syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o644)
		if err == nil {
			break
		}
		if err != syscall.EEXIST || try == 10 {
			return &fs.PathError{Op: "create", Path: tmp, Err: err}
		}
	}
	var err error
	for off := 0; off < len(b) && err == nil; {
		var n int
		n, err = syscall.Write(fd, b[off:])
		if err == syscall.EINTR {
			err = nil
		}
		off += n
	}
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = syscall.Rename(tmp, name)
	}
	if err != nil {
		syscall.Unlink(tmp) //nolint:errcheck // best effort; a scan removes it later
		return &fs.PathError{Op: "write", Path: name, Err: err}
	}
	return nil
}
