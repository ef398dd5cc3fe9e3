// Package regfile reads small files that must be regular files, without
// ever blocking on a FIFO or device planted at their path.
package regfile

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Read reads path if it is a regular file of at most limit bytes. It opens
// with O_NONBLOCK so that a FIFO cannot block the open, then checks the
// type on the open descriptor.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	// One read of the size fstat gave, then one more to see the end (the
	// file may have grown): no buffer regrowth on the hook's path.
	b := make([]byte, 0, fi.Size()+512)
	for {
		n, rerr := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, rerr
		}
		if len(b) == cap(b) {
			if int64(len(b)) > limit {
				break
			}
			b = append(b, 0)[:len(b)] // grow
		}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
