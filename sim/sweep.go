package sim

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Point is one run of a sweep: a Config, and where it goes in a figure.
type Point struct {
	Figure string  // figure (file) name
	Series string  // curve within the figure
	X      float64 // abscissa
	Config Config
}

// Figure is one plot of a sweep: which metric of which points, against
// what, with which closed form beside it.
type Figure struct {
	Name, Title, XLabel, YLabel string
	// Y reads the plotted metric from a result; Closed, when set, gives
	// the closed form drawn dashed beside each series.
	Y      func(*Result) float64
	Closed func(*Result) float64
	// Extra, when set, adds a second metric drawn dotted (p99, say), and
	// ExtraClosed its closed form, dashed.
	Extra       func(*Result) float64
	ExtraClosed func(*Result) float64
	ExtraLabel  string
}

// Sweep is the set of runs behind docs/ANALYSIS.md's plots.
type Sweep struct {
	Points  []Point
	Figures []Figure
}

// DefaultSweep is the sweep of docs/ANALYSIS.md around base (defaults
// filled): entropy against λ for several μ, against the corrupt fraction,
// latency against layers, and overhead against λL and λD.
func DefaultSweep(base Config) Sweep {
	var s Sweep
	add := func(fig, series string, x float64, c Config) {
		s.Points = append(s.Points, Point{Figure: fig, Series: series, X: x, Config: c})
	}
	for _, mu := range []float64{2, 5, 10, 20} {
		for _, lam := range []float64{0.125, 0.25, 0.5, 1, 2, 4, 8} {
			c := base
			c.Mu = mu
			// λ is a client's total rate, split as today's defaults 2:1:1;
			// real messages are a tenth of the payload slots.
			c.LambdaP, c.LambdaL, c.LambdaD, c.MessageRate = lam/2, lam/4, lam/4, lam/20
			c.ZeroLambdaL, c.ZeroLambdaD = false, false
			add("entropy_lambda", fmt.Sprintf("μ = %g /s", mu), lam, c)
		}
	}
	for _, f := range []float64{0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9} {
		c := base
		c.CorruptMixes = f
		add("entropy_corrupt", "mixes corrupt", f, c)
		c.CorruptProviders = f
		add("entropy_corrupt", "mixes and providers corrupt", f, c)
	}
	for l := 1; l <= 6; l++ {
		c := base
		c.Layers = l
		add("latency_layers", "end to end", float64(l), c)
	}
	for _, r := range []float64{0, 0.25, 0.5, 1, 2, 4} {
		c := base
		c.LambdaL, c.ZeroLambdaL = r, r == 0
		add("overhead", "λL varies (λD = 1)", r, c)
		c = base
		c.LambdaD, c.ZeroLambdaD = r, r == 0
		add("overhead", "λD varies (λL = 1)", r, c)
	}
	for _, r := range []float64{0, 100, 300, 1000, 3000} {
		c := base
		if r > 0 {
			c.Auditors, c.ProbeRate = 5, r/5
		}
		add("entropy_probes", "secret-shopper probes (5 auditors)", r, c)
	}
	s.Figures = []Figure{
		{Name: "entropy_lambda", Title: "Sender anonymity: simulated (solid), log2 N − shot-noise deficit (dashed)",
			XLabel: "λ = λP + λL + λD per client (/s, log scale)", YLabel: "sender entropy (bits)",
			Y: func(r *Result) float64 { return r.Sender.H.Mean() },
			Closed: func(r *Result) float64 {
				if r.Analytic.SenderDeficit > 1.5 {
					return math.NaN() // the approximation needs k ≳ 0.5
				}
				return math.Log2(float64(r.Config.Clients)) - r.Analytic.SenderDeficit
			}},
		{Name: "mix_entropy_lambda", Title: "One mix's output entropy: simulated (solid) and closed form (dashed)",
			XLabel: "λ = λP + λL + λD per client (/s, log scale)", YLabel: "entropy over a mix's outputs (bits)",
			Y:      func(r *Result) float64 { return r.Mix.H.Mean() },
			Closed: func(r *Result) float64 { return PoolPosteriorEntropy(r.LambdaMix / r.Config.Mu) }},
		{Name: "entropy_corrupt", Title: "Sender anonymity against corrupt nodes",
			XLabel: "fraction corrupt", YLabel: "sender entropy (bits)",
			Y: func(r *Result) float64 { return r.Sender.H.Mean() }},
		{Name: "latency_layers", Title: "End-to-end latency: mean (solid), p99 (dotted), Erlang (dashed)",
			XLabel: "mix layers L", YLabel: "seconds",
			Y:      func(r *Result) float64 { return r.EndToEnd.Mean() },
			Closed: func(r *Result) float64 { return r.Analytic.EndToEndMean },
			Extra:  func(r *Result) float64 { return r.EndToEnd.Quantile(0.99) }, ExtraLabel: "p99",
			ExtraClosed: func(r *Result) float64 { return r.Analytic.EndToEndP99 }},
		{Name: "entropy_probes", Title: "Sender anonymity against auditors' probe traffic",
			XLabel: "total probe rate (/s)", YLabel: "sender entropy (bits)",
			Y: func(r *Result) float64 { return r.Sender.H.Mean() }},
		{Name: "overhead", Title: "Bandwidth per real fragment: simulated (solid), analytic (dashed)",
			XLabel: "rate (/s per client)", YLabel: "link packets per real fragment",
			Y:      func(r *Result) float64 { return r.LinksPerFragment() },
			Closed: func(r *Result) float64 { return r.Analytic.LinksPerFragment }},
	}
	return s
}

// figureOf maps a figure to the points it plots (mix_entropy_lambda reuses
// entropy_lambda's runs).
func figureOf(f Figure) string {
	if f.Name == "mix_entropy_lambda" {
		return "entropy_lambda"
	}
	return f.Name
}

// SweepResult is one point's outcome.
type SweepResult struct {
	Point  Point
	Result *Result
}

// RunSweep runs every point, workers at a time (0: GOMAXPROCS), calling
// done after each. Points are independent runs with their own seeds, so
// the results do not depend on the number of workers.
func RunSweep(ctx context.Context, s Sweep, workers int, done func(i, n int, r SweepResult)) ([]SweepResult, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]SweepResult, len(s.Points))
	jobs := make(chan int)
	var (
		mu       sync.Mutex
		finished int
		errs     []error
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				p := s.Points[i]
				r, err := Run(ctx, p.Config)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("sim: sweep point %s/%s/%g: %w", p.Figure, p.Series, p.X, err))
				} else {
					out[i] = SweepResult{Point: p, Result: r}
					finished++
					if done != nil {
						done(finished, len(s.Points), out[i])
					}
				}
				mu.Unlock()
			}
		})
	}
	for i := range s.Points {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	return out, ctx.Err()
}

// csvHeader are the columns WriteCSV writes, one row per point.
var csvHeader = []string{"figure", "series", "x", "seed", "layers", "mixes_per_layer", "providers", "clients",
	"lambda_p", "lambda_l", "lambda_d", "lambda_m", "mu", "message_rate", "corrupt_mixes", "corrupt_providers",
	"auditors", "probe_rate", "duration_s", "targets", "sender_entropy_bits", "sender_entropy_se", "p_true", "eps_median", "eps_p95",
	"sender_entropy_closed", "mix_entropy_bits", "mix_entropy_closed", "mix_lambda", "mix_pool", "hop_mean_s", "hop_mean_closed_s",
	"e2e_mean_s", "e2e_mean_closed_s", "e2e_p99_s", "e2e_p99_erlang_s", "cover_share", "cover_share_closed",
	"links_per_fragment", "links_per_fragment_closed", "events", "wall_s", "peak_heap_mib"}

// WriteCSV writes one row per result to path.
func WriteCSV(path string, rs []SweepResult) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("sim: %w", cerr)
		}
	}()
	w := csv.NewWriter(f)
	if err := w.Write(csvHeader); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, sr := range rs {
		r := sr.Result
		if r == nil {
			continue
		}
		c, a := &r.Config, &r.Analytic
		row := []string{sr.Point.Figure, sr.Point.Series, g(sr.Point.X), strconv.FormatUint(c.Seed, 10),
			strconv.Itoa(c.Layers), strconv.Itoa(c.MixesPerLayer), strconv.Itoa(c.Providers), strconv.Itoa(c.Clients),
			g(c.LambdaP), g(c.LambdaL), g(c.LambdaD), g(c.LambdaM), g(c.Mu), g(c.MessageRate), g(c.CorruptMixes), g(c.CorruptProviders),
			strconv.Itoa(c.Auditors), g(c.ProbeRate), g(c.Duration.Seconds()), strconv.FormatInt(r.Sender.N, 10), g(r.Sender.H.Mean()), g(r.Sender.H.StdErr()),
			g(r.Sender.PTrue.Mean()), g(r.EpsQuantile(0.5)), g(r.EpsQuantile(0.95)),
			g(math.Log2(float64(c.Clients)) - a.SenderDeficit), g(r.Mix.H.Mean()), g(PoolPosteriorEntropy(r.LambdaMix / c.Mu)), g(r.LambdaMix), g(r.PoolMix),
			g(r.HopMix.Mean()), g(a.HopMean), g(r.EndToEnd.Mean()), g(a.EndToEndMean),
			g(r.EndToEnd.Quantile(0.99)), g(a.EndToEndP99), g(r.CoverShare()), g(a.CoverShare),
			g(r.LinksPerFragment()), g(a.LinksPerFragment), strconv.FormatUint(r.Events, 10),
			g(r.WallTime.Seconds()), g(float64(r.PeakHeap) / (1 << 20))}
		if err := w.Write(row); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// WritePlots draws each figure of s from rs as dir/sim_<name>.png and
// returns the files written.
func WritePlots(dir string, s Sweep, rs []SweepResult) ([]string, error) {
	var files []string
	for _, f := range s.Figures {
		p := plot.New()
		p.Title.Text = f.Title
		p.X.Label.Text, p.Y.Label.Text = f.XLabel, f.YLabel
		// Legends go where the curves are not: entropy rises to the top
		// right, overhead and latency start low on the left.
		switch f.Name {
		case "entropy_lambda", "mix_entropy_lambda", "entropy_corrupt", "entropy_probes":
			p.Legend.Top, p.Legend.Left = false, false
			if f.Name == "entropy_corrupt" {
				p.Legend.Left = true
			}
		default:
			p.Legend.Top, p.Legend.Left = true, true
		}
		p.Add(plotter.NewGrid())
		var series []string
		bySeries := map[string][]SweepResult{}
		logX := false
		for _, r := range rs {
			if r.Result == nil || r.Point.Figure != figureOf(f) {
				continue
			}
			if _, ok := bySeries[r.Point.Series]; !ok {
				series = append(series, r.Point.Series)
			}
			bySeries[r.Point.Series] = append(bySeries[r.Point.Series], r)
			logX = logX || f.Name == "entropy_lambda" || f.Name == "mix_entropy_lambda"
		}
		if logX {
			p.X.Scale = plot.LogScale{}
			var ticks []plot.Tick
			for _, r := range rs {
				if r.Point.Figure == figureOf(f) && !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == r.Point.X }) {
					ticks = append(ticks, plot.Tick{Value: r.Point.X, Label: strconv.FormatFloat(r.Point.X, 'g', -1, 64)})
				}
			}
			p.X.Tick.Marker = plot.ConstantTicks(ticks)
		}
		for i, name := range series {
			pts := bySeries[name]
			xy := func(y func(*Result) float64) plotter.XYs {
				out := make(plotter.XYs, 0, len(pts))
				for _, r := range pts {
					if v := y(r.Result); !math.IsNaN(v) && !math.IsInf(v, 0) {
						out = append(out, plotter.XY{X: r.Point.X, Y: v})
					}
				}
				return out
			}
			col := plotutil.Color(i)
			l, sc, err := plotter.NewLinePoints(xy(f.Y))
			if err != nil {
				return files, fmt.Errorf("sim: plot %s: %w", f.Name, err)
			}
			l.Color, sc.Color, sc.Shape = col, col, plotutil.Shape(i)
			p.Add(l, sc)
			p.Legend.Add(name, l, sc)
			dashed, dotted := []vg.Length{vg.Points(5), vg.Points(3)}, []vg.Length{vg.Points(1), vg.Points(2)}
			for _, extra := range []struct {
				y      func(*Result) float64
				dashes []vg.Length
				label  string
			}{{f.Closed, dashed, ""}, {f.Extra, dotted, f.ExtraLabel}, {f.ExtraClosed, dashed, ""}} {
				if extra.y == nil {
					continue
				}
				el, err := plotter.NewLine(xy(extra.y))
				if err != nil {
					return files, fmt.Errorf("sim: plot %s: %w", f.Name, err)
				}
				el.Color, el.Dashes = col, extra.dashes
				p.Add(el)
				if extra.label != "" {
					p.Legend.Add(name+" "+extra.label, el)
				}
			}
		}
		p.Legend.TextStyle.Font.Size = vg.Points(9)
		p.Legend.ThumbnailWidth = vg.Points(20)
		p.Legend.Padding = vg.Points(2)
		path := filepath.Join(dir, "sim_"+f.Name+".png")
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return files, fmt.Errorf("sim: saving %s: %w", path, err)
		}
		files = append(files, path)
	}
	return files, nil
}
