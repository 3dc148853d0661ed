// Package version reports noded's version and the commit it was built from.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X github.com/noded/noded/version.Version=...".
var Version = "0.1.0-dev"

// GitCommit, when set at build time (-ldflags "-X github.com/noded/noded/version.GitCommit=..."), is reported
// by Commit instead of the VCS information Go embeds (which builds outside a git checkout lack).
var GitCommit = ""

// Commit returns the VCS revision the binary was built from, with "-dirty" when the tree had changes.
func Commit() string {
	if GitCommit != "" {
		return GitCommit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
