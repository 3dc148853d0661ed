package ociruntime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noded/noded/errdefs"
)

func TestRuncVersion(t *testing.T) {
	for out, want := range map[string]struct {
		v      [3]int
		distro bool
	}{
		"runc version 1.1.11\ncommit: v1.1.11-0-g4bccb38c\nspec: 1.0.2-dev\n": {[3]int{1, 1, 11}, false},
		"runc version 1.5.2\nspec: 1.3.0\n":                                   {[3]int{1, 5, 2}, false},
		"runc version 1.2.0-rc.1+dev\n":                                       {[3]int{1, 2, 0}, false},
		"runc version 1.1\n":                                                  {[3]int{1, 1, 0}, false},
		"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n":               {[3]int{1, 1, 5}, true},
	} {
		if v, distro, ok := runcVersion(out); !ok || v != want.v || distro != want.distro {
			t.Errorf("%q: %v distro %v ok %v, want %v", out, v, distro, ok, want)
		}
	}
	for _, out := range []string{"crun version 1.8.1\ncommit: ...\n", "", "runc version unknown\n", "runc version 1.x.3\n"} {
		if v, _, ok := runcVersion(out); ok {
			t.Errorf("%q parsed as %v", out, v)
		}
	}
}

// TestCheckRuncVersion: runc 1.1.11 (open to CVE-2024-21626) is refused, 1.1.12 and crun are not; a
// distribution's 1.1.5+ds1 (which may carry the backported fix) passes with a warning.
func TestCheckRuncVersion(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, out string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\nprintf '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := context.Background()
	if _, err := CheckRuncVersion(ctx, fake("old", `runc version 1.1.11\ncommit: x\n`)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("runc 1.1.11: %v, want FailedPrecondition", err)
	}
	for name, out := range map[string]string{"fixed": `runc version 1.1.12\n`, "new": `runc version 1.5.2\n`, "crun": `crun version 1.8.1\n`} {
		if w, err := CheckRuncVersion(ctx, fake(name, out)); err != nil || w != "" {
			t.Errorf("%s: warning %q, %v", name, w, err)
		}
	}
	w, err := CheckRuncVersion(ctx, fake("debian", `runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n`))
	if err != nil || !strings.Contains(w, "CVE-2024-21626") {
		t.Errorf("Debian's runc: warning %q, %v", w, err)
	}
	if _, err := CheckRuncVersion(ctx, "/usr/local/sbin/runc"); err != nil {
		t.Errorf("installed runc: %v", err)
	}
}
