package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

const procStat = `cpu  1000 50 300 8000 100 10 40 500 0 0
cpu0 500 25 150 4000 50 5 20 250 0 0
cpu1 500 25 150 4000 50 5 20 250 0 0
intr 12345
ctxt 999
`

func TestParseProcStat(t *testing.T) {
	s, err := parseProcStat([]byte(procStat))
	if err != nil {
		t.Fatal(err)
	}
	want := CPUStat{User: 1000, Nice: 50, System: 300, Idle: 8000, IOWait: 100, IRQ: 10, SoftIRQ: 40, Steal: 500}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	if s.Busy() != 1400 {
		t.Errorf("busy = %d, want 1400 (user+nice+system+irq+softirq)", s.Busy())
	}
	if s.Total() != 10000 {
		t.Errorf("total = %d, want 10000", s.Total())
	}
	// An old kernel without steal and later columns.
	old, err := parseProcStat([]byte("cpu 1 2 3 4\n"))
	if err != nil || old != (CPUStat{User: 1, Nice: 2, System: 3, Idle: 4}) {
		t.Errorf("short line: %+v, %v", old, err)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu 1 2\n", "cpu 1 x 3 4\n"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPhaseStatStealAndBusy(t *testing.T) {
	a, _ := parseProcStat([]byte(procStat))
	b := a
	b.User += 60
	b.System += 20
	b.Idle += 100
	b.Steal += 20
	ps := phaseStat("x", 0, b.sub(a), 0.5, 1.5)
	if ps.BusyPct != 40 || ps.StealPct != 10 {
		t.Errorf("busy %.2f%% steal %.2f%%, want 40%% and 10%%", ps.BusyPct, ps.StealPct)
	}
	if ps.Load1Start != 0.5 || ps.Load1End != 1.5 {
		t.Errorf("load %v -> %v", ps.Load1Start, ps.Load1End)
	}
	if z := phaseStat("z", 0, CPUStat{}, 0, 0); z.BusyPct != 0 || z.StealPct != 0 {
		t.Errorf("empty delta: %+v", z)
	}
	// A counter that went backwards counts nothing instead of wrapping.
	if d := a.sub(b); d.User != 0 || d.Idle != 0 {
		t.Errorf("backwards delta %+v", d)
	}
}

func TestParseLoadavg(t *testing.T) {
	l, err := parseLoadavg([]byte("1.25 0.80 0.50 3/456 7890\n"))
	if err != nil || l != 1.25 {
		t.Errorf("got %v, %v", l, err)
	}
	if _, err := parseLoadavg(nil); err == nil {
		t.Error("empty: no error")
	}
}

func TestParsePidStat(t *testing.T) {
	// comm with spaces and a parenthesis; utime 1234 (field 14), stime 56 (field 15), cutime 999 not counted.
	line := "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 1234 56 999 888 20 0 8 0 100 1000000 200 18446744073709551615\n"
	got, err := parsePidStat([]byte(line))
	if err != nil || got != 1290 {
		t.Errorf("got %d, %v; want 1290", got, err)
	}
	if _, err := parsePidStat([]byte("42 (x) S 1 2")); err == nil {
		t.Error("short stat: no error")
	}
	if _, err := parsePidStat([]byte("garbage")); err == nil {
		t.Error("no comm: no error")
	}
}

func TestCPUMeterPerItem(t *testing.T) {
	var m cpuMeter
	m.add(CPUStat{User: 50, System: 20, Idle: 500, Steal: 30}, 10, 1) // 70 busy ticks, steal and idle not counted
	m.add(CPUStat{User: 100, SoftIRQ: 10, IOWait: 40}, 20, 2)         // 110 busy ticks for two pods
	machine, daemon := m.perItemMs()
	// (70 + 110) ticks over 3 pods at 100 ticks/s = 600 ms per pod; daemon 30 ticks / 3 = 100 ms.
	if machine != 600 || daemon != 100 {
		t.Errorf("machine %v ms, daemon %v ms per pod; want 600 and 100", machine, daemon)
	}
	var empty cpuMeter
	if a, b := empty.perItemMs(); a != 0 || b != 0 {
		t.Errorf("no brackets: %v %v", a, b)
	}
}

func TestInterleave(t *testing.T) {
	var got [][]int
	for i := 0; i < 4; i++ {
		got = append(got, interleave(i, 2))
	}
	want := [][]int{{0, 1}, {1, 0}, {0, 1}, {1, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("two endpoints: %v, want %v", got, want)
	}
	if o := interleave(1, 1); !reflect.DeepEqual(o, []int{0}) {
		t.Errorf("one endpoint: %v", o)
	}
	if o := interleave(3, 3); !reflect.DeepEqual(o, []int{2, 1, 0}) {
		t.Errorf("three endpoints, odd round: %v", o)
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("250, 0,100,100")
	if err != nil || !reflect.DeepEqual(got, []int{0, 100, 250}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", ",", "-1", "a,1"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	got := niceTicks(0, 250, 6)
	want := []float64{0, 50, 100, 150, 200, 250}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("0..250: %v, want %v", got, want)
	}
	got = niceTicks(0, 7.3, 5)
	if got[0] != 0 || got[len(got)-1] < 7.3 {
		t.Errorf("0..7.3 does not cover the range: %v", got)
	}
	for i := 1; i < len(got); i++ {
		if d := got[i] - got[i-1]; math.Abs(d-2) > 1e-9 {
			t.Errorf("0..7.3: step %v, want 2 (%v)", d, got)
		}
	}
}

func TestWriteSVG(t *testing.T) {
	panels := []Panel{
		{Title: "pod start p50", YUnit: "ms", XLabel: "pods running", Series: []Series{
			{Name: "noded", Color: 0, Points: []Point{{0, 100}, {100, 150}, {250, 200}}},
			{Name: "containerd <2.4>", Color: 1, Dash: 1, Points: []Point{{0, 300}, {250, 400}}},
		}},
		{Title: "empty", YUnit: "ms"},
	}
	var buf bytes.Buffer
	if err := writeSVG(&buf, "t & t", panels); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Well-formed XML (escaped names included).
	d := xml.NewDecoder(strings.NewReader(out))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed XML: %v\n%s", err, out)
			}
			break
		}
	}
	if n := strings.Count(out, "<polyline"); n != 2 {
		t.Errorf("%d polylines, want 2 (one per series with points)", n)
	}
	if n := strings.Count(out, "<circle"); n != 5 {
		t.Errorf("%d markers, want 5", n)
	}
	for _, s := range []string{"containerd &lt;2.4&gt;", "t &amp; t", `stroke-dasharray="6,3"`, "pods running"} {
		if !strings.Contains(out, s) {
			t.Errorf("SVG lacks %q", s)
		}
	}
	// y grows downwards: the noded point at 200 ms sits above (smaller y) the one at 100 ms, and the last
	// x lies right of the first.
	var pts string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "<polyline") && strings.Contains(line, plotColors[0]) {
			pts = line[strings.Index(line, `points="`)+8:]
			pts = pts[:strings.IndexByte(pts, '"')]
		}
	}
	xy := strings.Fields(pts)
	if len(xy) != 3 {
		t.Fatalf("noded polyline points %q", pts)
	}
	var x0, y0, x2, y2 float64
	if _, err := fmtSscanPair(xy[0], &x0, &y0); err != nil {
		t.Fatal(err)
	}
	if _, err := fmtSscanPair(xy[2], &x2, &y2); err != nil {
		t.Fatal(err)
	}
	if !(x2 > x0 && y2 < y0) {
		t.Errorf("first point (%v,%v), last (%v,%v): want the last right of and above the first", x0, y0, x2, y2)
	}
}

func fmtSscanPair(s string, x, y *float64) (int, error) {
	return fmt.Sscanf(s, "%g,%g", x, y)
}

func TestScaleLinesAndPanels(t *testing.T) {
	cs := []*client{{label: "noded"}, {label: "containerd"}}
	pt := func(n int, start float64) scalePoint {
		return scalePoint{Pods: n, StartP50: start, CPUPerPod: 2 * start, RSS: math.NaN(), DaemonCPUPerPod: math.NaN(),
			RelistDaemonPct: math.NaN(), RelistMachinePct: math.NaN(), ListP99: [3]float64{1, 2, 3}}
	}
	pts := [][]scalePoint{{pt(0, 100), pt(250, 120)}, {pt(0, 300), pt(250, 400)}}
	var buf bytes.Buffer
	if err := printScale(&buf, cs, pts); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want a header and one per count per endpoint:\n%s", len(lines), buf.String())
	}
	if f := strings.Fields(lines[4]); f[0] != "containerd" || f[1] != "250" || f[2] != "400/0" {
		t.Errorf("last line %q", lines[4])
	}
	panels := scalePanels(cs, pts)
	if len(panels) != 5 {
		t.Fatalf("%d panels", len(panels))
	}
	if got := panels[0].Series[1].Points; !reflect.DeepEqual(got, []Point{{0, 300}, {250, 400}}) {
		t.Errorf("containerd start series %v", got)
	}
	if n := len(panels[3].Series); n != 6 {
		t.Errorf("list panel has %d series, want 3 RPCs x 2 runtimes", n)
	}
	if n := len(panels[4].Series[0].Points); n != 0 {
		t.Errorf("RSS unknown (NaN) yet %d points plotted", n)
	}
}
