package stats

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// collectWant is what a collected sample holds: the union of what container and pod stats read, so that one
// sample serves both.
const collectWant = ctrWant | podWant

// sample is one reading of a cgroup, kept for the stats calls when collection is on.
type sample struct {
	ts   time.Time
	cg   *cgstats.Sample
	want cgstats.Want
	// rate is the CPU usage in nanocores since the previous sample of the same cgroup, nil for a first sample.
	rate *uint64
}

// collecting reports whether samples are kept and served (Config.CollectionPeriod above 0).
func (p *Provider) collecting() bool { return p.cfg.CollectionPeriod > 0 }

// servable reports whether s can answer a call wanting want at now: it holds those counters, has a rate (a
// first sample is read again, so that the caller gets one), was taken no earlier than notBefore, and is younger
// than two periods (a stalled or stopped collection falls back to reading on demand).
func (p *Provider) servable(s sample, want cgstats.Want, now, notBefore time.Time) bool {
	return s.cg != nil && s.want&want == want && s.rate != nil && !now.Before(s.ts) && !s.ts.Before(notBefore) &&
		now.Sub(s.ts) < 2*p.cfg.CollectionPeriod
}

// sampleCgroup returns a sample of the cgroup at path, key naming its owner ("c/<id>", "p/<id>"): the kept one
// when collection is on and it is servable (taken no earlier than notBefore), else a reading taken now (kept
// when collecting). A cgroup that is gone is NotFound.
func (p *Provider) sampleCgroup(key, path string, want cgstats.Want, notBefore time.Time) (sample, error) {
	if p.collecting() {
		p.mu.Lock()
		s, ok := p.samples[key]
		p.mu.Unlock()
		if ok && p.servable(s, want, p.cfg.Now(), notBefore) {
			return s, nil
		}
		want |= collectWant
	}
	return p.readSample(key, path, want)
}

// readSample reads the cgroup at path now, computes its CPU rate against the key's anchor and, when collecting,
// keeps the sample unless a newer one is already kept.
func (p *Provider) readSample(key, path string, want cgstats.Want) (sample, error) {
	ts := p.cfg.Now()
	cg, err := p.cfg.Cgroups.Read(path, want)
	if err != nil {
		return sample{}, err
	}
	s := sample{ts: ts, cg: cg, want: want, rate: p.rate(key, ts, cg.CPU.UsageNanos)}
	if p.collecting() {
		p.mu.Lock()
		if old, ok := p.samples[key]; !ok || !old.ts.After(ts) {
			p.samples[key] = s
		}
		p.mu.Unlock()
	}
	return s, nil
}

// containerSample samples the cgroup of running container c (see sampleCgroup). A container that exited
// between its state check and the read has no sample and no error.
func (p *Provider) containerSample(c *store.Container, want cgstats.Want) (*sample, error) {
	path, err := p.containerCgroup(c)
	if err != nil {
		return nil, err
	}
	s, err := p.sampleCgroup("c/"+c.ID, path, want, time.Time{})
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// ownCgroup reports whether the pod's cgroup parent is its own (kubelet named one, and no other pod shares it), so
// that the parent's counters are the pod's totals.
func ownCgroup(sb *store.Sandbox, parents map[string]int) bool {
	return sb.Config.GetLinux().GetCgroupParent() != "" && parents[sb.CgroupParent] == 1
}

// RunCollection samples every running container and every ready pod with a cgroup of its own at once and then
// every CollectionPeriod until ctx ends, so that stats calls serve those samples. A cgroup sampled for the first
// time (a container started since the last pass) has no CPU rate yet, so that calls would read it themselves
// until the next pass: those alone are sampled again minRateWindow later. A pass that outlasts the period delays
// the next one. With collection off (a period of 0) it returns at once.
func (p *Provider) RunCollection(ctx context.Context) {
	if !p.collecting() {
		return
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for next := time.Duration(0); wait(next); {
		next = p.cfg.CollectionPeriod
		if unrated := p.Collect(ctx); len(unrated) > 0 && minRateWindow < next {
			if !wait(minRateWindow) {
				return
			}
			_, _ = p.sampleAll(ctx, unrated)
			next -= minRateWindow
		}
	}
}

// target is a cgroup to sample: its key and its path.
type target struct{ key, path string }

// sampleAll samples targets one after the other (background work: the pass keeps to one core, leaving the other
// to the RPCs) and returns those whose sample has no CPU rate yet (first samples). It stops early, with ctx's
// error, if ctx ends.
func (p *Provider) sampleAll(ctx context.Context, targets []target) ([]target, error) {
	var unrated []target
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := p.readSample(t.key, t.path, collectWant)
		if err != nil && !errdefs.IsNotFound(err) {
			klog.V(2).InfoS("stats sample unavailable", "cgroup", t.path, "err", err)
		}
		if err == nil && s.rate == nil {
			unrated = append(unrated, t)
		}
	}
	return unrated, nil
}

// Collect is one pass of RunCollection: it reads the cgroups of the running containers and of the ready pods
// that have one of their own, and drops the samples of everything else. It returns the cgroups
// sampled for the first time (no CPU rate yet).
func (p *Provider) Collect(ctx context.Context) []target {
	if !p.collecting() {
		return nil
	}
	var targets []target
	for _, c := range p.cfg.Store.ContainerRecords("") {
		if c.State != store.ContainerRunning {
			continue
		}
		path, err := p.containerCgroup(c)
		if err != nil {
			continue
		}
		targets = append(targets, target{"c/" + c.ID, path})
	}
	sandboxes := p.cfg.Store.SandboxRecords()
	parents := countParents(sandboxes)
	for _, sb := range sandboxes {
		if sb.State != store.SandboxReady || !ownCgroup(sb, parents) {
			continue
		}
		path, err := p.podCgroup(sb)
		if err != nil {
			continue
		}
		targets = append(targets, target{"p/" + sb.ID, path})
	}
	unrated, err := p.sampleAll(ctx, targets)
	if err != nil {
		return nil
	}
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.key] = true
	}
	p.mu.Lock()
	dropUnless(p.samples, keep, "")
	dropUnless(p.built, keep, "c/")
	p.mu.Unlock()
	return unrated
}
