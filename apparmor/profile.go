// Package apparmor generates noded's default AppArmor profile for containers, loads it into the kernel with
// apparmor_parser and tells whether a profile is loaded.
package apparmor

import (
	"bytes"
	"fmt"
	"regexp"
	"text/template"
)

// DefaultProfile is the name of the profile containers get for RuntimeDefault on hosts with AppArmor.
const DefaultProfile = "noded-default"

// The profile is self-contained (no #include): it needs nothing of /etc/apparmor.d but the ABI file, and it pins
// ABI 3.0, under which the bare "network" rule still covers unix sockets.
//
// The rules allow what the other layers (capabilities, seccomp, namespaces, masked and read-only paths) already
// police, and add what those cannot express: no write to the kernel's knobs in /proc and /sys whatever the
// mounts say, no mounting at all, no reading of the kernel's memory or the LSM interfaces, and signals and
// ptrace only among processes of this profile (plus signals from the host and the OCI runtimes).
var profileTemplate = template.Must(template.New("profile").Parse(`# {{.Name}}: the AppArmor profile noded gives containers that ask for RuntimeDefault.
# Written and loaded by noded at start (and whenever it finds the profile missing); changes here are replaced.
abi <abi/3.0>,

profile {{.Name}} flags=(attach_disconnected,mediate_deleted) {
  # Coarse allowances; capabilities and system calls are restricted by the bounding set and seccomp.
  capability,
  network,
  file,

  # No mount table changes: a container must not undo its masked or read-only paths.
  deny mount,
  deny remount,
  deny umount,
  deny pivot_root,

  # /proc: a process may write its own entries below /proc/<pid>/, nothing else. Entries directly in /proc
  # (sysrq-trigger, ...) and every subtree whose name does not start with a digit (sys, fs, irq, bus, driver, ...)
  # are denied for writing; /proc/self and /proc/thread-self resolve to /proc/<pid>/ before this check.
  deny /proc/* wl,
  deny /proc/[^0-9]*/** wl,
  deny /proc/sys/** wl,
  deny /proc/sysrq-trigger rwklx,
  deny /proc/kcore rwklx,
  deny /proc/kmem rwklx,
  deny /proc/mem rwklx,

  # /sys: read-only throughout; firmware, the LSM interfaces and debugfs are not even readable.
  deny /sys/** wkl,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
  deny /sys/kernel/debug/** rwklx,

  # Signals: from the host and the OCI runtimes (stop, kill), and among the container's own processes.
  signal (receive) peer=unconfined,
  signal (receive) peer=runc,
  signal (receive) peer=crun,
  signal (send, receive) peer={{.Name}},

  # ptrace and /proc/<pid> inspection only of processes under this same profile.
  ptrace (trace, read, tracedby, readby) peer={{.Name}},
}
`))

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Profile returns the text of the default profile under name.
func Profile(name string) ([]byte, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("apparmor: invalid profile name %q", name)
	}
	var b bytes.Buffer
	if err := profileTemplate.Execute(&b, struct{ Name string }{name}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
