package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Point is one (x, y) of a series.
type Point struct{ X, Y float64 }

// Series is one line of a panel. Color picks the runtime's colour, Dash the line style (for several metrics of
// one runtime in one panel).
type Series struct {
	Name   string
	Color  int
	Dash   int
	Points []Point
}

// Panel is one chart: series against a shared x axis.
type Panel struct {
	Title, YUnit, XLabel string
	Series               []Series
}

var (
	plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	plotDashes = []string{"", "6,3", "2,3", "8,3,2,3"}
)

const (
	panelW, panelH = 460, 300
	padL, padR     = 60, 20
	padT, padB     = 30, 80 // the legend goes below the x axis
	plotCols       = 2
)

// niceTicks returns about n round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).
func niceTicks(lo, hi float64, n int) []float64 {
	if n < 2 {
		n = 2
	}
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n-1)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Floor(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	if len(out) > 0 && out[len(out)-1] < hi {
		out = append(out, out[len(out)-1]+step)
	}
	return out
}

// bounds returns the data range of a panel: x over every point, y from 0 to the largest value.
func (p Panel) bounds() (x0, x1, y0, y1 float64, ok bool) {
	x0, x1 = math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			x0, x1 = math.Min(x0, pt.X), math.Max(x1, pt.X)
			y1 = math.Max(y1, pt.Y)
			ok = true
		}
	}
	if !ok {
		return 0, 1, 0, 1, false
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 == 0 {
		y1 = 1
	}
	return x0, x1, 0, y1, true
}

func tickLabel(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// writeSVG draws the panels in a grid of two columns as one SVG document.
func writeSVG(w io.Writer, title string, panels []Panel) error {
	bw := bufio.NewWriter(w)
	rows := (len(panels) + plotCols - 1) / plotCols
	cols := min(len(panels), plotCols)
	W, H := max(cols, 1)*panelW, 30+rows*panelH
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", W, H, W, H)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(bw, `<text x="%d" y="20" text-anchor="middle" font-size="15">%s</text>`+"\n", W/2, html.EscapeString(title))
	for i, p := range panels {
		ox, oy := (i%plotCols)*panelW, 30+(i/plotCols)*panelH
		writePanel(bw, p, ox, oy)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

func writePanel(w io.Writer, p Panel, ox, oy int) {
	x0, x1, y0, y1, _ := p.bounds()
	xt := niceTicks(x0, x1, 6)
	yt := niceTicks(y0, y1, 5)
	x0, x1 = math.Min(x0, xt[0]), math.Max(x1, xt[len(xt)-1])
	y0, y1 = math.Min(y0, yt[0]), math.Max(y1, yt[len(yt)-1])
	left, top := float64(ox+padL), float64(oy+padT)
	pw, ph := float64(panelW-padL-padR), float64(panelH-padT-padB)
	sx := func(x float64) float64 { return left + (x-x0)/(x1-x0)*pw }
	sy := func(y float64) float64 { return top + ph - (y-y0)/(y1-y0)*ph }

	fmt.Fprintf(w, `<g><text x="%.1f" y="%.1f" text-anchor="middle" font-size="13">%s (%s)</text>`+"\n",
		left+pw/2, top-10, html.EscapeString(p.Title), html.EscapeString(p.YUnit))
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", left, top, pw, ph)
	for _, t := range yt {
		y := sy(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, left, y, left+pw, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y+4, tickLabel(t))
	}
	for _, t := range xt {
		x := sx(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x, top, x, top+ph)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, top+ph+14, tickLabel(t))
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+pw/2, top+ph+28, html.EscapeString(p.XLabel))
	for i, s := range p.Series {
		color := plotColors[s.Color%len(plotColors)]
		dash := plotDashes[s.Dash%len(plotDashes)]
		dashAttr := ""
		if dash != "" {
			dashAttr = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
		}
		if len(s.Points) > 0 {
			var pts []string
			for _, pt := range s.Points {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(pt.X), sy(pt.Y)))
			}
			fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), color, dashAttr)
			for _, pt := range s.Points {
				fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, sx(pt.X), sy(pt.Y), color)
			}
			fmt.Fprintln(w)
		}
		// Legend: two entries a row below the axis label.
		lx := left + float64(i%2)*pw/2
		ly := top + ph + 44 + float64(i/2)*14
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`, lx, ly-4, lx+24, ly-4, color, dashAttr)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+30, ly, html.EscapeString(s.Name))
	}
	fmt.Fprintln(w, "</g>")
}
