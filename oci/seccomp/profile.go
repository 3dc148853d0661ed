// Package seccomp holds noded's RuntimeDefault seccomp profile and loads Docker-format (also plain OCI-format)
// JSON profiles, turning them into the OCI runtime spec's LinuxSeccomp for a given container.
package seccomp

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/noded/noded/errdefs"
)

// Profile is a seccomp profile in the Docker JSON format. A plain OCI LinuxSeccomp document is a subset of it.
type Profile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	// Architectures lists the architectures directly (OCI style).
	Architectures []specs.Arch `json:"architectures,omitempty"`
	// ArchMap maps a native architecture to its sub-architectures (Docker style); only the entry of the
	// container's architecture is used.
	ArchMap  []ArchMapEntry           `json:"archMap,omitempty"`
	Flags    []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	Syscalls []Syscall                `json:"syscalls,omitempty"`

	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`
}

// ArchMapEntry is one element of Profile.ArchMap.
type ArchMapEntry struct {
	Arch             specs.Arch   `json:"architecture"`
	SubArchitectures []specs.Arch `json:"subArchitectures,omitempty"`
}

// Syscall is one rule: an action for a set of syscall names, optionally limited by argument comparisons and
// by Includes/Excludes conditions evaluated when the profile is applied.
type Syscall struct {
	Name     string                   `json:"name,omitempty"` // old single-name form
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	Includes *Filter                  `json:"includes,omitempty"`
	Excludes *Filter                  `json:"excludes,omitempty"`
}

// Filter is a rule condition. In Includes every listed capability must be held and the architecture must be
// listed; in Excludes holding any listed capability or running on a listed architecture drops the rule.
type Filter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"` // Go GOARCH names: amd64, arm64, ...
	MinKernel string   `json:"minKernel,omitempty"`
}

// Target is what a profile is applied for.
type Target struct {
	// Caps are the container's bounding capabilities ("CAP_SYS_ADMIN" form).
	Caps []string
	// Arch is the GOARCH of the container; "" = this process's.
	Arch string
	// Kernel is the host kernel release ("6.1.0-..."); "" = unknown, minKernel conditions then hold.
	Kernel string
}

// nativeArches maps a GOARCH to the seccomp architectures a container of that arch can use.
func nativeArches(goarch string) []specs.Arch {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "386":
		return []specs.Arch{specs.ArchX86}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "arm":
		return []specs.Arch{specs.ArchARM}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	}
	return nil
}

// Parse decodes a JSON profile. Invalid documents yield InvalidArgument.
func Parse(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, errdefs.InvalidArgument("invalid seccomp profile: %v", err)
	}
	if p.DefaultAction == "" {
		return nil, errdefs.InvalidArgument("invalid seccomp profile: defaultAction is missing")
	}
	return &p, nil
}

// Load reads and parses the profile at path, which must be absolute. A missing file is NotFound, an unreadable
// or invalid one InvalidArgument.
func Load(path string) (*Profile, error) {
	if !filepath.IsAbs(path) {
		return nil, errdefs.InvalidArgument("seccomp profile path %q must be absolute", path)
	}
	data, err := readProfile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, errdefs.NotFound("seccomp profile %q does not exist", path)
		}
		return nil, errdefs.InvalidArgument("read seccomp profile %q: %v", path, err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", path, err)
	}
	return p, nil
}

// maxProfileSize bounds a profile file (the default profile is about 30 KiB as JSON).
const maxProfileSize = 4 << 20

// readProfile reads a regular file of at most maxProfileSize bytes. The path comes from the CRI request: a FIFO
// or a device (/dev/zero) must give an error, not a call that blocks or never ends.
func readProfile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > maxProfileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxProfileSize)
	}
	return io.ReadAll(io.LimitReader(f, maxProfileSize+1))
}

var validActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno, specs.ActTrace,
	specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var validOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo, specs.OpGreaterEqual,
	specs.OpGreaterThan, specs.OpMaskedEqual,
}

// kernelAtLeast reports whether release (e.g. "6.1.0-18-amd64") is >= min (e.g. "4.8").
func kernelAtLeast(release, min string) bool {
	parse := func(s string) []int {
		var out []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' }) {
			n, err := strconv.Atoi(f)
			if err != nil {
				break
			}
			out = append(out, n)
			if len(out) == 3 {
				break
			}
		}
		return out
	}
	r, m := parse(release), parse(min)
	for i := range m {
		v := 0
		if i < len(r) {
			v = r[i]
		}
		if v != m[i] {
			return v > m[i]
		}
	}
	return true
}

func (s *Syscall) applies(t Target, arch string) bool {
	if in := s.Includes; in != nil {
		for _, c := range in.Caps {
			if !slices.Contains(t.Caps, c) {
				return false
			}
		}
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
			return false
		}
		if in.MinKernel != "" && t.Kernel != "" && !kernelAtLeast(t.Kernel, in.MinKernel) {
			return false
		}
	}
	if ex := s.Excludes; ex != nil {
		for _, c := range ex.Caps {
			if slices.Contains(t.Caps, c) {
				return false
			}
		}
		if slices.Contains(ex.Arches, arch) {
			return false
		}
		if ex.MinKernel != "" && t.Kernel != "" && kernelAtLeast(t.Kernel, ex.MinKernel) {
			return false
		}
	}
	return true
}

// ToOCI evaluates the profile's conditions for t and returns the OCI seccomp configuration.
func (p *Profile) ToOCI(t Target) (*specs.LinuxSeccomp, error) {
	arch := t.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	if !slices.Contains(validActions, p.DefaultAction) {
		return nil, errdefs.InvalidArgument("seccomp profile: unknown defaultAction %q", p.DefaultAction)
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  p.DefaultErrnoRet,
		Flags:            slices.Clone(p.Flags),
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return nil, errdefs.InvalidArgument("seccomp profile: architectures and archMap are mutually exclusive")
	}
	out.Architectures = slices.Clone(p.Architectures)
	if len(p.ArchMap) > 0 {
		native := nativeArches(arch)
		for _, m := range p.ArchMap {
			if len(native) > 0 && m.Arch == native[0] {
				out.Architectures = append([]specs.Arch{m.Arch}, m.SubArchitectures...)
			}
		}
	}
	for i, s := range p.Syscalls {
		names := slices.Clone(s.Names)
		if s.Name != "" {
			names = append(names, s.Name)
		}
		if len(names) == 0 {
			return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d] has no names", i)
		}
		if !slices.Contains(validActions, s.Action) {
			return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d] has unknown action %q", i, s.Action)
		}
		for j, a := range s.Args {
			if !slices.Contains(validOps, a.Op) {
				return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d].args[%d] has unknown op %q", i, j, a.Op)
			}
			if a.Index > 5 {
				return nil, errdefs.InvalidArgument("seccomp profile: syscalls[%d].args[%d] index %d > 5", i, j, a.Index)
			}
		}
		if !s.applies(t, arch) {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names:    names,
			Action:   s.Action,
			ErrnoRet: s.ErrnoRet,
			Args:     slices.Clone(s.Args),
		})
	}
	return out, nil
}
