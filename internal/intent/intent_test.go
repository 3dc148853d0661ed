package intent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

type record struct {
	id, state, err string
	orphaned       bool
	made           []string // side effects, in the order made
	created        time.Time
	adopted        bool
}

// fakeKind is a Kind over records in a map, whose undo removes side effects one by one and fails on those named
// in stuck.
type fakeKind struct {
	Kind[record]
	stored  map[string]record
	stuck   map[string]bool
	undone  []string // IDs undo ran on
	undoCtx context.Context
	undoErr error // undoCtx's error when undo ran
}

func newFakeKind() *fakeKind {
	f := &fakeKind{stored: map[string]record{}, stuck: map[string]bool{}}
	f.Kind = Kind[record]{
		Noun: "record", IDKey: "id",
		ID:        func(r *record) string { return r.id },
		Name:      func(r *record) string { return "name-" + r.id },
		Creating:  func(r *record) bool { return r.state == "creating" },
		Made:      func(r *record) { r.state = "made" },
		IsMade:    func(r *record) bool { return r.state == "made" },
		Orphaned:  func(r *record) *bool { return &r.orphaned },
		CreatedAt: func(r *record) time.Time { return r.created },
		Adopted:   func(r *record) bool { return r.adopted },
		Unknown:   func(r *record, err error) { r.state, r.err = "unknown", err.Error() },
		Add: func(r *record) error {
			if _, ok := f.stored[r.id]; ok {
				return fmt.Errorf("%s exists", r.id)
			}
			f.stored[r.id] = *r
			return nil
		},
		Update: func(id string, fn func(*record) error) error {
			r, ok := f.stored[id]
			if !ok {
				return fmt.Errorf("%s not found", id)
			}
			if err := fn(&r); err != nil {
				return err
			}
			f.stored[id] = r
			return nil
		},
		Delete: func(id string) error { delete(f.stored, id); return nil },
		Undo: func(ctx context.Context, r *record) error {
			f.undone, f.undoCtx, f.undoErr = append(f.undone, r.id), ctx, ctx.Err()
			for len(r.made) > 0 {
				last := r.made[len(r.made)-1]
				if f.stuck[last] {
					return fmt.Errorf("%s is busy", last)
				}
				r.made = r.made[:len(r.made)-1]
			}
			return ctx.Err()
		},
	}
	return f
}

var errFailed = errors.New("setup failed")

func TestCreate(t *testing.T) {
	f := newFakeKind()
	var doCtx context.Context
	r := &record{id: "a", state: "creating"}
	err := f.Create(context.Background(), r, func(ctx context.Context, r *record) error {
		if got := f.stored["a"]; got.state != "creating" {
			t.Errorf("the intent was not stored before the side effects: %+v", got)
		}
		doCtx = ctx
		r.made = append(r.made, "mount")
		return nil
	}, Detached(RollbackTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doCtx.Deadline(); !ok {
		t.Error("the creation has no deadline (CreateTimeout)")
	}
	got := f.stored["a"]
	if got.state != "made" || got.orphaned || !slices.Equal(got.made, []string{"mount"}) || len(f.undone) != 0 {
		t.Fatalf("stored %+v, undone %v", got, f.undone)
	}
	if err := f.Create(context.Background(), &record{id: "a", state: "creating"}, func(context.Context, *record) error {
		t.Error("ran the side effects of a creation whose intent could not be stored")
		return nil
	}, Detached(RollbackTimeout)); err == nil {
		t.Error("Create hid the failed intent")
	}
}

type key struct{}

// A creation whose caller gives up runs to its end, under a context that is not cut short, and is marked orphaned.
func TestCreateForACallerThatGaveUp(t *testing.T) {
	f := newFakeKind()
	caller, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	r := &record{id: "a", state: "creating"}
	err := f.Create(caller, r, func(ctx context.Context, r *record) error {
		cancel() // the caller gives up midway
		if ctx.Err() != nil || ctx.Value(key{}) != "v" {
			t.Errorf("creation context: err %v, value %v", ctx.Err(), ctx.Value(key{}))
		}
		return nil
	}, Detached(RollbackTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.stored["a"]; got.state != "made" || !got.orphaned {
		t.Fatalf("stored %+v, want made and orphaned", got)
	}
}

// A failed creation is rolled back under the bound the call site gives; the record goes when everything was undone.
func TestCreateRollsBack(t *testing.T) {
	f := newFakeKind()
	caller, cancel := context.WithCancel(context.Background())
	r := &record{id: "a", state: "creating"}
	err := f.Create(caller, r, func(ctx context.Context, r *record) error {
		r.made = append(r.made, "pin", "mount")
		cancel()
		return errFailed
	}, Detached(RollbackTimeout))
	if !errors.Is(err, errFailed) {
		t.Fatalf("Create = %v, want the creation's error", err)
	}
	if _, ok := f.stored["a"]; ok || !slices.Equal(f.undone, []string{"a"}) {
		t.Fatalf("stored %+v, undone %v", f.stored, f.undone)
	}
	if f.undoErr != nil {
		t.Error("the rollback ran under the caller's cancelled context")
	}
	if d, ok := f.undoCtx.Deadline(); !ok || time.Until(d) > RollbackTimeout {
		t.Errorf("rollback deadline %v, %v; want within RollbackTimeout", d, ok)
	}
}

// A rollback that cannot undo everything stores what the creation had made and undo left, as unknown with the
// reason, over the stored intent.
func TestRollbackKeepsProgressAsUnknown(t *testing.T) {
	f := newFakeKind()
	f.stuck["pin"] = true
	r := &record{id: "a", state: "creating"}
	err := f.Create(context.Background(), r, func(ctx context.Context, r *record) error {
		r.made = append(r.made, "pin", "mount")
		return errFailed
	}, Detached(RollbackTimeout))
	if !errors.Is(err, errFailed) {
		t.Fatalf("Create = %v", err)
	}
	got, ok := f.stored["a"]
	if !ok || got.state != "unknown" || got.err != "pin is busy" || !slices.Equal(got.made, []string{"pin"}) {
		t.Fatalf("stored %+v, want unknown with the pin still named", got)
	}
	if r.state != "creating" {
		t.Fatalf("the in-memory record was marked: %+v", r)
	}
	if err := f.Rollback(context.Background(), &got, Inherited); err == nil {
		t.Fatal("Rollback hid the failed undo")
	}
	delete(f.stuck, "pin")
	if err := f.Rollback(context.Background(), &got, Inherited); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.stored["a"]; ok {
		t.Fatal("a record whose rollback succeeded is still stored")
	}
}

// Recovery rolls back exactly the records still creating (forgetting them, or keeping them as unknown) and hands
// back the others untouched and in order.
func TestRecover(t *testing.T) {
	f := newFakeKind()
	f.stuck["busy"] = true
	records := []record{
		{id: "made1", state: "made", made: []string{"x"}},
		{id: "cut", state: "creating", made: []string{"pin"}},
		{id: "unknown", state: "unknown", made: []string{"busy"}},
		{id: "stuck", state: "creating", made: []string{"busy", "mount"}},
		{id: "made2", state: "made"},
	}
	for i := range records {
		f.stored[records[i].id] = records[i]
	}
	rest := f.Recover(context.Background(), records, Inherited)
	var ids []string
	for _, r := range rest {
		ids = append(ids, r.id)
	}
	if !slices.Equal(ids, []string{"made1", "unknown", "made2"}) {
		t.Errorf("Recover handed back %v", ids)
	}
	if !slices.Equal(f.undone, []string{"cut", "stuck"}) {
		t.Errorf("undo ran on %v, want only the records still creating", f.undone)
	}
	if _, ok := f.stored["cut"]; ok {
		t.Error("an interrupted creation rolled back is still stored")
	}
	if got := f.stored["stuck"]; got.state != "unknown" || got.err != "busy is busy" || !slices.Equal(got.made, []string{"busy"}) {
		t.Errorf("an interrupted creation whose rollback failed: %+v", got)
	}
	for _, id := range []string{"made1", "unknown", "made2"} {
		if got := f.stored[id]; got.state != records[slices.IndexFunc(records, func(r record) bool { return r.id == id })].state {
			t.Errorf("%s changed: %+v", id, got)
		}
	}
}

// Recovery's rollbacks run under the bound the call site gives: with Inherited, the start context as it is.
func TestRecoverUnderItsBound(t *testing.T) {
	f := newFakeKind()
	start, cancel := context.WithCancel(context.Background())
	f.stored["cut"] = record{id: "cut", state: "creating"}
	f.Recover(start, []record{f.stored["cut"]}, Inherited)
	if _, ok := f.undoCtx.Deadline(); ok {
		t.Error("recovery under Inherited got a deadline of its own")
	}
	cancel()
	f.stored["cut"] = record{id: "cut", state: "creating"}
	f.Recover(start, []record{f.stored["cut"]}, Inherited)
	if got := f.stored["cut"]; got.state != "unknown" || got.err != context.Canceled.Error() {
		t.Errorf("recovery under a cancelled start context: %+v, want it cut short and kept as unknown", got)
	}
	f.stored["cut"] = record{id: "cut", state: "creating"}
	f.Recover(start, []record{f.stored["cut"]}, Detached(time.Hour))
	if _, ok := f.stored["cut"]; ok || f.undoErr != nil {
		t.Errorf("recovery under Detached was cut short by the start context: %+v", f.stored)
	}
}

// The retry of a caller that gave up is handed the orphan it left, once, and the mark is cleared in the store; any
// other record of the name is not handed (the caller's AlreadyExists).
func TestHandOff(t *testing.T) {
	f := newFakeKind()
	f.stored["a"] = record{id: "a", state: "made", orphaned: true}
	f.stored["b"] = record{id: "b", state: "made"}
	f.stored["c"] = record{id: "c", state: "unknown", orphaned: true}
	r := f.stored["a"]
	id, handed, err := f.HandOff(&r)
	if err != nil || !handed || id != "a" {
		t.Fatalf("HandOff(orphan) = %q, %v, %v; want a, true, nil", id, handed, err)
	}
	if f.stored["a"].orphaned || r.orphaned {
		t.Errorf("a handed-off record is still orphaned: stored %+v, given %+v", f.stored["a"], r)
	}
	for _, name := range []string{"a", "b", "c"} {
		r := f.stored[name]
		if id, handed, err := f.HandOff(&r); err != nil || handed || id != "" {
			t.Errorf("HandOff(%+v) = %q, %v, %v; want not handed", r, id, handed, err)
		}
	}
	if got := f.stored["c"]; !got.orphaned || got.state != "unknown" {
		t.Errorf("a record not handed changed: %+v", got)
	}

	f.stored["d"] = record{id: "d", state: "made", orphaned: true}
	r = f.stored["d"]
	delete(f.stored, "d") // the store write fails
	if id, handed, err := f.HandOff(&r); err == nil || handed || id != "" {
		t.Errorf("HandOff with a failed store write = %q, %v, %v; want the error, not handed", id, handed, err)
	}
}

// Reap removes exactly the records still orphaned maxAge after their creation and not adopted, counts only the
// removals that succeeded, and goes on past a failed one.
func TestReap(t *testing.T) {
	f := newFakeKind()
	old, young := time.Now().Add(-2*time.Hour), time.Now()
	records := []record{
		{id: "lonely", state: "made", orphaned: true, created: old},
		{id: "claimed", state: "made", created: old},
		{id: "young", state: "made", orphaned: true, created: young},
		{id: "adopted", state: "made", orphaned: true, created: old, adopted: true},
		{id: "stuck", state: "made", orphaned: true, created: old},
		{id: "lonely2", state: "unknown", orphaned: true, created: old},
	}
	var tried []string
	remove := func(ctx context.Context, id string) error {
		tried = append(tried, id)
		if id == "stuck" {
			return errFailed
		}
		return nil
	}
	if n := f.Reap(context.Background(), records, time.Hour, remove); n != 2 {
		t.Errorf("Reap = %d, want 2", n)
	}
	if !slices.Equal(tried, []string{"lonely", "stuck", "lonely2"}) {
		t.Errorf("Reap removed %v, want lonely, stuck, lonely2", tried)
	}
	tried = nil
	if n := f.Reap(context.Background(), records, 3*time.Hour, remove); n != 0 || len(tried) != 0 {
		t.Errorf("Reap with a maxAge none reached = %d, removed %v", n, tried)
	}
}
