package intent

import (
	"context"
	"errors"
	"testing"
)

func TestRollback(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var forgot bool
	var kept error
	undo := func(ctx context.Context) error { return ctx.Err() }
	if err := Rollback(gone, undo, func() error { forgot = true; return nil }, func(err error) { kept = err }); err != nil {
		t.Fatalf("rollback after the caller gave up ran under its cancelled context: %v", err)
	}
	if !forgot || kept != nil {
		t.Fatalf("undone creation: forgot %v, kept %v", forgot, kept)
	}
	forgot = false
	boom := errors.New("busy")
	err := Rollback(context.Background(), func(context.Context) error { return boom },
		func() error { forgot = true; return nil }, func(err error) { kept = err })
	if !errors.Is(err, boom) || !errors.Is(kept, boom) || forgot {
		t.Fatalf("failed undo: err %v, kept %v, forgot %v", err, kept, forgot)
	}
}

type record struct {
	state, err string
	made       []string
}

// KeepUnknown writes the creation's progress over the stored intent, then marks it unknown with the reason.
func TestKeepUnknown(t *testing.T) {
	stored := record{state: "creating"}
	progress := &record{state: "creating", made: []string{"mount", "pin"}}
	keep := KeepUnknown(progress, func(fn func(*record) error) error { return fn(&stored) },
		func(r *record, err error) { r.state, r.err = "unknown", err.Error() })
	if err := Rollback(context.Background(), func(context.Context) error { return errors.New("busy") },
		func() error { t.Fatal("forgot a record that was not undone"); return nil }, keep); err == nil {
		t.Fatal("Rollback hid the failed undo")
	}
	if stored.state != "unknown" || stored.err != "busy" || len(stored.made) != 2 {
		t.Fatalf("stored record %+v", stored)
	}
	if progress.state != "creating" {
		t.Fatalf("the in-memory record was changed: %+v", progress)
	}
}

type key struct{}

func TestDetachAndOrphaned(t *testing.T) {
	caller, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	ctx, done := Detach(caller)
	defer done()
	cancel()
	if ctx.Err() != nil || ctx.Value(key{}) != "v" {
		t.Fatalf("detached context: err %v, value %v", ctx.Err(), ctx.Value(key{}))
	}
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("detached context has no deadline")
	}
	if !Orphaned(caller) || Orphaned(context.Background()) {
		t.Fatal("Orphaned")
	}
}
