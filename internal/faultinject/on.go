//go:build faultinject

package faultinject

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// Enabled reports whether kill points are compiled in.
const Enabled = true

// Point acts if the file named by NODED_FAULTINJECT_FILE names this point: "<name>" kills the process with
// SIGKILL; "delay <name> <duration>" sleeps that long (a slow operation). Either fires once: the file is removed.
func Point(name string) {
	path := os.Getenv(EnvFile)
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	var delay time.Duration
	switch {
	case len(f) == 1 && f[0] == name:
	case len(f) == 3 && f[0] == "delay" && f[1] == name:
		if delay, err = time.ParseDuration(f[2]); err != nil {
			fmt.Fprintf(os.Stderr, "faultinject: bad delay %q: %v\n", f[2], err)
			return
		}
	default:
		return
	}
	if err := os.Remove(path); err != nil {
		return // another goroutine fired it
	}
	if delay > 0 {
		fmt.Fprintf(os.Stderr, "faultinject: delaying noded at %s for %s\n", name, delay)
		time.Sleep(delay)
		return
	}
	fmt.Fprintf(os.Stderr, "faultinject: killing noded at %s\n", name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught: nothing runs after it
}

// Reader returns r wrapped so that Point(name) is checked when the reader asks for more after the first data
// was handed out (and written on by the caller): a kill in the middle of a stream.
func Reader(name string, r io.Reader) io.Reader { return &reader{name: name, r: r} }

type reader struct {
	name          string
	r             io.Reader
	read, checked bool
}

func (f *reader) Read(p []byte) (int, error) {
	if f.read && !f.checked {
		f.checked = true
		Point(f.name)
	}
	n, err := f.r.Read(p)
	if n > 0 {
		f.read = true
	}
	return n, err
}
