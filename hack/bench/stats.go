package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// percentile returns the p-th percentile (0-100) of xs by the nearest-rank method: the smallest value such that
// at least p% of the samples are less than or equal to it. xs need not be sorted; it is not modified. It returns
// 0 for no samples.
func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// Row is one measurement of the table: a name, a value and its unit. Lower says whether a smaller value is
// better (latencies, memory) or a larger one (throughput); it decides how ratios are read.
type Row struct {
	Name  string
	Value float64
	Unit  string
	Lower bool
	Note  string
}

// Results are the rows of one run against one endpoint, in the order they were measured.
type Results struct {
	Label string
	Rows  []Row
}

func (r *Results) add(name string, v float64, unit string, lowerIsBetter bool) {
	r.Rows = append(r.Rows, Row{Name: name, Value: v, Unit: unit, Lower: lowerIsBetter})
}

func (r *Results) note(name, note string) {
	r.Rows = append(r.Rows, Row{Name: name, Value: math.NaN(), Note: note})
}

// addLatencies adds p50, p90 and p99 of xs in milliseconds under prefix.
func (r *Results) addLatencies(prefix string, xs []time.Duration) {
	for _, p := range []float64{50, 90, 99} {
		r.add(fmt.Sprintf("%s p%g", prefix, p), ms(percentile(xs, p)), "ms", true)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(bytes uint64) float64 { return float64(bytes) / (1 << 20) }

// median returns the median of the values, NaN for none.
func median(vs []float64) float64 {
	var s []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// printTable writes one result set as an aligned table.
func printTable(w io.Writer, r *Results) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\t%s\tunit\t\n", r.Label)
	for _, row := range r.Rows {
		v := formatValue(row.Value)
		if row.Note != "" {
			v = row.Note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", row.Name, v, row.Unit)
	}
	return tw.Flush()
}

// compareTable merges the rounds of two endpoints (each a list of result sets with the same rows, measured
// alternately) into one table: the median of each side's rounds and the ratio A/B. Rows are matched by name;
// a row only one side has is shown with "-" for the other.
func compareTable(w io.Writer, a, b []*Results) error {
	type agg struct {
		row    Row
		av, bv []float64
		notes  [2]string
	}
	var order []string
	rows := map[string]*agg{}
	collect := func(rs []*Results, side int) {
		for _, r := range rs {
			for _, row := range r.Rows {
				g, ok := rows[row.Name]
				if !ok {
					g = &agg{row: row}
					rows[row.Name] = g
					order = append(order, row.Name)
				}
				if row.Unit != "" && g.row.Unit == "" {
					g.row = row
				}
				if row.Note != "" {
					g.notes[side] = row.Note
					continue
				}
				if side == 0 {
					g.av = append(g.av, row.Value)
				} else {
					g.bv = append(g.bv, row.Value)
				}
			}
		}
	}
	collect(a, 0)
	collect(b, 1)
	la, lb := "A", "B"
	if len(a) > 0 {
		la = a[0].Label
	}
	if len(b) > 0 {
		lb = b[0].Label
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\t%s\t%s\tunit\t%s/%s\t\n", la, lb, la, lb)
	for _, name := range order {
		g := rows[name]
		ma, mb := median(g.av), median(g.bv)
		if g.notes != [2]string{} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\n", name, g.notes[0], g.notes[1])
			continue
		}
		ratio := "-"
		if !math.IsNaN(ma) && !math.IsNaN(mb) && mb != 0 {
			ratio = fmt.Sprintf("%.2fx", ma/mb)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, formatValue(ma), formatValue(mb), g.row.Unit, ratio)
	}
	return tw.Flush()
}

// rowValue returns the value of the named row, NaN if absent.
func (r *Results) rowValue(name string) float64 {
	for _, row := range r.Rows {
		if row.Name == name {
			return row.Value
		}
	}
	return math.NaN()
}

// label makes a short label from an endpoint: the socket file's directory name or the whole endpoint.
func label(endpoint string) string {
	e := strings.TrimPrefix(endpoint, "unix://")
	parts := strings.Split(strings.TrimSuffix(e, "/"), "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2]
	}
	return e
}
