// Package metrics defines noded's Prometheus metrics and serves them over HTTP. The daemon creates one Metrics
// with its own registry and hands small observer functions to the packages it measures (the CRI interceptor,
// the image service, CNI and the OCI runtimes); pod and container counts are read from the state store at
// scrape time.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"k8s.io/klog/v2"
)

const namespace = "noded"

// Result label values.
const (
	resultSuccess = "success"
	resultError   = "error"
)

// Metrics holds noded's collectors. Its methods are safe for concurrent use; a nil *Metrics ignores every
// observation, so callers need no checks when metrics are off.
type Metrics struct {
	reg *prometheus.Registry

	rpcDuration     *prometheus.HistogramVec
	rpcErrors       *prometheus.CounterVec
	pullDuration    *prometheus.HistogramVec
	pullBytes       prometheus.Counter
	cniDuration     *prometheus.HistogramVec
	runtimeDuration *prometheus.HistogramVec
	runtimeErrors   *prometheus.CounterVec
}

// latencyBuckets span 1 ms to about 65 s: CRI calls range from map lookups to container starts.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 17)

// pullBuckets span 100 ms to about 27 min.
var pullBuckets = prometheus.ExponentialBuckets(0.1, 2, 15)

// New creates noded's metrics in a fresh registry (with the Go runtime and process collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "cri", Name: "request_duration_seconds",
			Help:    "Latency of CRI calls by gRPC method, including failed ones.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cri", Name: "request_errors_total",
			Help: "CRI calls that returned an error, by gRPC method and status code.",
		}, []string{"method", "code"}),
		pullDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "image", Name: "pull_duration_seconds",
			Help:    "Duration of image pulls (resolve, download and unpack), by result.",
			Buckets: pullBuckets,
		}, []string{"result"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "image", Name: "pull_bytes_total",
			Help: "Compressed layer bytes downloaded from registries.",
		}),
		cniDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "cni", Name: "operation_duration_seconds",
			Help:    "Latency of CNI network setup (ADD) and teardown (DEL) of pods, by operation and result.",
			Buckets: latencyBuckets,
		}, []string{"operation", "result"}),
		runtimeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "oci_runtime", Name: "operation_duration_seconds",
			Help:    "Latency of OCI runtime calls (create through conmon, start, kill, delete, ...), by runtime handler and operation.",
			Buckets: latencyBuckets,
		}, []string{"runtime", "operation"}),
		runtimeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "oci_runtime", Name: "operation_errors_total",
			Help: "OCI runtime calls that failed, by runtime handler and operation.",
		}, []string{"runtime", "operation"}),
	}
	m.reg.MustRegister(m.rpcDuration, m.rpcErrors, m.pullDuration, m.pullBytes, m.cniDuration,
		m.runtimeDuration, m.runtimeErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where noded's collectors are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRPC records one CRI call: its latency and, for a failed one, its status code.
func (m *Metrics) ObserveRPC(method string, code codes.Code, d time.Duration) {
	if m == nil {
		return
	}
	m.rpcDuration.WithLabelValues(method).Observe(d.Seconds())
	if code != codes.OK {
		m.rpcErrors.WithLabelValues(method, code.String()).Inc()
	}
}

// ObservePull records one image pull.
func (m *Metrics) ObservePull(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.pullDuration.WithLabelValues(result(err)).Observe(d.Seconds())
}

// AddPullBytes counts downloaded layer bytes.
func (m *Metrics) AddPullBytes(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.pullBytes.Add(float64(n))
}

// ObserveCNI records one CNI operation ("setup" or "teardown").
func (m *Metrics) ObserveCNI(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.cniDuration.WithLabelValues(op, result(err)).Observe(d.Seconds())
}

// RuntimeObserver returns the observer of one runtime handler's calls.
func (m *Metrics) RuntimeObserver(handler string) func(op string, d time.Duration, err error) {
	if m == nil {
		return nil
	}
	return func(op string, d time.Duration, err error) {
		m.runtimeDuration.WithLabelValues(handler, op).Observe(d.Seconds())
		if err != nil {
			m.runtimeErrors.WithLabelValues(handler, op).Inc()
		}
	}
}

func result(err error) string {
	if err != nil {
		return resultError
	}
	return resultSuccess
}

// Serve serves the registry's metrics at /metrics on addr until stop is called. It returns once the listener is
// up, with the address it listens on (addr may use port 0).
func (m *Metrics) Serve(addr string) (bound string, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: errorLogger{}, ErrorHandling: promhttp.ContinueOnError,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "metrics server failed")
		}
	}()
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// errorLogger sends promhttp's errors to klog.
type errorLogger struct{}

func (errorLogger) Println(v ...any) { klog.ErrorS(errors.New("metrics"), "scrape error", "detail", v) }
