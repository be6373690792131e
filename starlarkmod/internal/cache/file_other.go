//go:build !linux

package cache

import (
	"errors"
	"io"
	"os"
	"time"
)

// fileStat is what a reader learns of an entry file it opened.
type fileStat struct {
	fi  os.FileInfo
	mod time.Time
}

// readFile reads the regular file at p whole.
func readFile(p string) ([]byte, fileStat, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fileStat{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStat{}, err
	}
	st := fileStat{fi: fi, mod: fi.ModTime()}
	if !fi.Mode().IsRegular() {
		return nil, st, errors.New("not a regular file")
	}
	b := make([]byte, fi.Size())
	n, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF {
		return b[:n], st, nil // shrunk since the stat: the checks catch it
	}
	return b, st, err
}

// sameFile reports whether p is still the file a reader read.
func sameFile(p string, st fileStat) bool {
	fi, err := os.Lstat(p)
	return err == nil && os.SameFile(fi, st.fi)
}

// writeAtomic writes b to name through a temporary file in dir renamed
// over it.
func writeAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp) //nolint:errcheck // best effort; a scan removes it later
	}
	return err
}
