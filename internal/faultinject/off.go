//go:build !faultinject

package faultinject

import "io"

// Enabled reports whether kill points are compiled in.
const Enabled = false

// Point does nothing without the faultinject build tag.
func Point(string) {}

// Reader returns r: without the faultinject build tag nothing is injected.
func Reader(_ string, r io.Reader) io.Reader { return r }
