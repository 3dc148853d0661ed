// Package signal names Linux signals the way images (STOPSIGNAL), the CRI (the Signal enum) and users spell them,
// and turns them into numbers: "SIGTERM", "term", "15", aliases such as SIGIOT or SIGCLD, and the real-time
// signals as SIGRTMIN+n / SIGRTMAX-n (with glibc's SIGRTMIN 34 and SIGRTMAX 64, as runc, containerd and docker
// count them; the kernel's 32 and 33 are reserved by the C library and have no name).
package signal

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// The real-time signal range user space sees.
const (
	RTMin = 34
	RTMax = 64
)

// Signal is a parsed signal: a canonical name and its number.
type Signal struct {
	// Name is the canonical spelling: "SIG" + upper case, an alias kept as given (SIGIOT, SIGCLD, SIGPOLL), a
	// real-time signal as SIGRTMIN, SIGRTMIN+1 … SIGRTMIN+15, SIGRTMAX-14 … SIGRTMAX-1, SIGRTMAX (the CRI's split).
	Name string
	Num  unix.Signal
}

// names of the standard signals 1-31 (amd64/arm64 numbering, which is the generic one), canonical name first.
var standard = map[string]unix.Signal{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7, "SIGFPE": 8,
	"SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15,
	"SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
	"SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29,
	"SIGPWR": 30, "SIGSYS": 31,
}

// aliases are other names of standard signals. The CRI enum has SIGIOT, SIGCLD and SIGPOLL of its own, so those
// keep their spelling; SIGUNUSED (31 on older C libraries) is reported as SIGSYS.
var aliases = map[string]unix.Signal{"SIGIOT": 6, "SIGCLD": 17, "SIGPOLL": 29, "SIGUNUSED": 31}

// byNum is the canonical name of each standard signal number.
var byNum = func() map[unix.Signal]string {
	m := make(map[unix.Signal]string, len(standard))
	for name, n := range standard {
		m[n] = name
	}
	return m
}()

// Parse reads a signal name or number: upper or lower case, with or without "SIG", "SIGRTMIN+n", "SIGRTMAX-n",
// or a decimal number (1-31, 34-64). Anything else is InvalidArgument.
func Parse(s string) (Signal, error) {
	in := s
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return Signal{}, errdefs.InvalidArgument("empty signal name")
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.Atoi(s)
		if err != nil {
			return Signal{}, errdefs.InvalidArgument("signal %q is not a name or a number", in)
		}
		return FromNumber(n)
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if n, ok := standard[s]; ok {
		return Signal{Name: s, Num: n}, nil
	}
	if n, ok := aliases[s]; ok {
		if s == "SIGUNUSED" {
			return Signal{Name: byNum[n], Num: n}, nil
		}
		return Signal{Name: s, Num: n}, nil
	}
	for _, base := range []struct {
		prefix string
		num    int
		sign   int
	}{{"SIGRTMIN", RTMin, 1}, {"SIGRTMAX", RTMax, -1}} {
		rest, ok := strings.CutPrefix(s, base.prefix)
		if !ok {
			continue
		}
		if rest == "" {
			return FromNumber(base.num)
		}
		op := byte('+')
		if base.sign < 0 {
			op = '-'
		}
		if rest[0] != op || len(rest) == 1 {
			break
		}
		off, err := strconv.Atoi(rest[1:])
		if err != nil || off < 0 || strconv.Itoa(off) != rest[1:] {
			break
		}
		n := base.num + base.sign*off
		if n < RTMin || n > RTMax {
			return Signal{}, errdefs.InvalidArgument("signal %q is outside SIGRTMIN..SIGRTMAX (%d..%d)", in, RTMin, RTMax)
		}
		return FromNumber(n)
	}
	return Signal{}, errdefs.InvalidArgument("%q is not a signal", in)
}

// FromNumber returns the signal numbered n under its canonical name.
func FromNumber(n int) (Signal, error) {
	switch {
	case n >= 1 && n <= 31:
		return Signal{Name: byNum[unix.Signal(n)], Num: unix.Signal(n)}, nil
	case n == RTMin:
		return Signal{Name: "SIGRTMIN", Num: unix.Signal(n)}, nil
	case n == RTMax:
		return Signal{Name: "SIGRTMAX", Num: unix.Signal(n)}, nil
	case n > RTMin && n <= RTMin+15:
		return Signal{Name: "SIGRTMIN+" + strconv.Itoa(n-RTMin), Num: unix.Signal(n)}, nil
	case n > RTMin+15 && n < RTMax:
		return Signal{Name: "SIGRTMAX-" + strconv.Itoa(RTMax-n), Num: unix.Signal(n)}, nil
	}
	return Signal{}, errdefs.InvalidArgument("signal number %d is not a signal containers can be sent (1-31, %d-%d)", n, RTMin, RTMax)
}

// FromCRI converts the CRI Signal enum; RUNTIME_DEFAULT and values this package does not know are InvalidArgument
// (callers decide what the default is).
func FromCRI(sig runtimeapi.Signal) (Signal, error) {
	if sig == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return Signal{}, errdefs.InvalidArgument("no signal given (SIGNAL_RUNTIME_DEFAULT)")
	}
	name, ok := runtimeapi.Signal_name[int32(sig)]
	if !ok {
		return Signal{}, errdefs.InvalidArgument("unknown CRI signal %d", int32(sig))
	}
	name = strings.TrimPrefix(name, "SIGNAL_")
	name = strings.Replace(name, "PLUS", "+", 1)
	name = strings.Replace(name, "MINUS", "-", 1)
	return Parse(name)
}

// CRI returns the CRI enum value of s: its own name where the enum has it (aliases included), else the value of
// its canonical name; RUNTIME_DEFAULT for the zero Signal.
func (s Signal) CRI() runtimeapi.Signal {
	if s.Num == 0 {
		return runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT
	}
	enumName := func(name string) string {
		return "SIGNAL_" + strings.NewReplacer("+", "PLUS", "-", "MINUS").Replace(name)
	}
	if v, ok := runtimeapi.Signal_value[enumName(s.Name)]; ok {
		return runtimeapi.Signal(v)
	}
	if c, err := FromNumber(int(s.Num)); err == nil {
		if v, ok := runtimeapi.Signal_value[enumName(c.Name)]; ok {
			return runtimeapi.Signal(v)
		}
	}
	return runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT
}

// String is the name.
func (s Signal) String() string { return s.Name }
