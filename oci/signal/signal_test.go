package signal

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Signal{
		"SIGTERM": {"SIGTERM", 15}, "term": {"SIGTERM", 15}, "15": {"SIGTERM", 15}, " sigquit ": {"SIGQUIT", 3},
		"SIGIOT": {"SIGIOT", 6}, "iot": {"SIGIOT", 6}, "SIGCLD": {"SIGCLD", 17}, "SIGPOLL": {"SIGPOLL", 29},
		"SIGUNUSED": {"SIGSYS", 31}, "6": {"SIGABRT", 6}, "29": {"SIGIO", 29}, "SIGSTKFLT": {"SIGSTKFLT", 16},
		"SIGRTMIN": {"SIGRTMIN", 34}, "RTMIN": {"SIGRTMIN", 34}, "SIGRTMIN+0": {"SIGRTMIN", 34},
		"SIGRTMIN+3": {"SIGRTMIN+3", 37}, "sigrtmin+3": {"SIGRTMIN+3", 37}, "37": {"SIGRTMIN+3", 37},
		"SIGRTMIN+15": {"SIGRTMIN+15", 49}, "SIGRTMIN+16": {"SIGRTMAX-14", 50}, "SIGRTMIN+30": {"SIGRTMAX", 64},
		"SIGRTMAX-1": {"SIGRTMAX-1", 63}, "SIGRTMAX-14": {"SIGRTMAX-14", 50}, "SIGRTMAX-15": {"SIGRTMIN+15", 49},
		"SIGRTMAX-30": {"SIGRTMIN", 34}, "SIGRTMAX": {"SIGRTMAX", 64}, "64": {"SIGRTMAX", 64}, "34": {"SIGRTMIN", 34},
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "SIG", "SIGBOGUS", "BOGUS", "0", "32", "33", "65", "-1", "15x", "+15", "SIGRTMIN+31", "SIGRTMAX-31",
		"SIGRTMIN-1", "SIGRTMAX+1", "SIGRTMIN+", "SIGRTMIN+x", "SIGRTMIN+03", "SIGRTMIN+-1", "SIGRTMINPLUS3",
	} {
		if got, err := Parse(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) = %+v, %v; want InvalidArgument", in, got, err)
		}
	}
}

func TestCRIEnumRoundTrips(t *testing.T) {
	seen := map[int]bool{}
	for v := range runtimeapi.Signal_name {
		sig := runtimeapi.Signal(v)
		if sig == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
			continue
		}
		s, err := FromCRI(sig)
		if err != nil {
			t.Errorf("FromCRI(%v): %v", sig, err)
			continue
		}
		if back := s.CRI(); back != sig {
			t.Errorf("FromCRI(%v) = %+v, back to %v", sig, s, back)
		}
		seen[int(s.Num)] = true
	}
	// The enum covers every signal number (aliases besides).
	for n := 1; n <= RTMax; n++ {
		if n == 32 || n == 33 {
			continue
		}
		if !seen[n] {
			t.Errorf("no CRI signal for number %d", n)
		}
	}
	if s, _ := FromCRI(runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3); s.Num != 37 {
		t.Errorf("SIGRTMINPLUS3 = %+v, want 37", s)
	}
	for _, bad := range []runtimeapi.Signal{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, 999} {
		if _, err := FromCRI(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("FromCRI(%v) = %v, want InvalidArgument", bad, err)
		}
	}
	// Names only reachable by parsing map to the enum of their number.
	if got := (Signal{Name: "SIGSYS", Num: 31}).CRI(); got != runtimeapi.Signal_SIGNAL_SIGSYS {
		t.Errorf("SIGSYS = %v", got)
	}
	if got := (Signal{}).CRI(); got != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		t.Errorf("zero = %v", got)
	}
}
