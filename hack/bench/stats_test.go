package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var xs []time.Duration
	for i := 100; i >= 1; i-- { // unsorted input
		xs = append(xs, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("p%g = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
	three := []time.Duration{3, 1, 2}
	if got := percentile(three, 50); got != 2 {
		t.Errorf("p50 of 1,2,3 = %v, want 2", got)
	}
	if got := percentile(three, 99); got != 3 {
		t.Errorf("p99 of 1,2,3 = %v, want 3", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if got := median([]float64{math.NaN(), 7}); got != 7 {
		t.Errorf("median ignores NaN: got %v", got)
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median of nothing = %v, want NaN", got)
	}
}

func TestParseRollup(t *testing.T) {
	data := []byte("55d0c1a3e000-7ffd4b1f8000 ---p 00000000 00:00 0    [rollup]\nRss:                2048 kB\nPss:                1024 kB\nPss_Anon:            512 kB\n")
	m := parseRollup(data)
	if m.RSS != 2048<<10 || m.PSS != 1024<<10 {
		t.Errorf("parseRollup = %+v, want RSS 2 MiB, PSS 1 MiB", m)
	}
}

func TestPodOf(t *testing.T) {
	p := Proc{Cgroups: []string{"/", "/noded-bench-daemons/noded", "/noded-bench/pod-1/ctr-abc"}}
	if got := p.podOf("/noded-bench"); got != "pod-1" {
		t.Errorf("podOf = %q, want pod-1", got)
	}
	if got := p.podOf("/noded-bench/"); got != "pod-1" {
		t.Errorf("podOf with a trailing slash = %q, want pod-1", got)
	}
	// A parent that only shares a prefix of the name is not the parent.
	if got := (Proc{Cgroups: []string{"/noded-bench-daemons/noded"}}).podOf("/noded-bench"); got != "" {
		t.Errorf("podOf of a daemon cgroup = %q, want none", got)
	}
}

func table(t *testing.T, f func(*bytes.Buffer) error) []string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

func TestPrintTable(t *testing.T) {
	r := &Results{Label: "noded"}
	r.addLatencies("seq start", []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond})
	r.add("throughput", 123.456, "pods/s", false)
	r.note("helpers", "conmon x1.0")
	lines := table(t, func(b *bytes.Buffer) error { return printTable(b, r) })
	want := [][]string{
		{"metric", "noded", "unit"},
		{"seq", "start", "p50", "20.0", "ms"},
		{"seq", "start", "p90", "30.0", "ms"},
		{"seq", "start", "p99", "30.0", "ms"},
		{"throughput", "123", "pods/s"},
		{"helpers", "conmon", "x1.0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], w)
		}
	}
	// Columns are aligned: every value starts at the same offset.
	col := strings.Index(lines[0], "noded")
	if !strings.HasPrefix(lines[4][col:], "123") {
		t.Errorf("values not aligned under the label:\n%s", strings.Join(lines, "\n"))
	}
}

func TestCompareTableMediansAndRatio(t *testing.T) {
	round := func(label string, start, rate float64, note string) *Results {
		r := &Results{Label: label}
		r.add("seq start p50", start, "ms", true)
		r.add("throughput", rate, "pods/s", false)
		r.note("helpers", note)
		return r
	}
	a := []*Results{round("noded", 40, 20, "conmon x1.0"), round("noded", 60, 30, "conmon x1.0"), round("noded", 50, 10, "conmon x1.0")}
	b := []*Results{round("containerd", 100, 10, "containerd-shim x1.0"), round("containerd", 200, 5, "containerd-shim x1.0")}
	b[1].add("only-b", 7, "ms", true)
	lines := table(t, func(buf *bytes.Buffer) error { return compareTable(buf, a, b) })
	want := []string{
		"metric noded containerd unit noded/containerd",
		"seq start p50 50.0 150 ms 0.33x",
		"throughput 20.0 7.50 pods/s 2.67x",
		"helpers conmon x1.0 containerd-shim x1.0",
		"only-b - 7.00 ms -",
	}
	if len(lines) != len(want) {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != w {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {1.234, "1.23"}, {12.34, "12.3"}, {1234.5, "1234"}, {math.NaN(), "-"}} {
		if got := formatValue(c.v); got != c.want {
			t.Errorf("formatValue(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}
