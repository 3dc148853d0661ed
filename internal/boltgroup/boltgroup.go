// Package boltgroup shares bbolt write transactions between goroutines: Update calls made while a commit is under
// way are committed together in the next one, so N concurrent writers pay for about two commits (each two
// fdatasyncs) instead of N, and a lone writer pays for one, as with DB.Update and without DB.Batch's delay. No
// goroutine runs the commits: the first waiting caller that finds none under way commits everything queued (the
// loop of internal/groupcommit; what a failed commit does is this package's).
package boltgroup

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/noded/noded/internal/groupcommit"
)

// Group queues the write transactions of one database. It is safe for concurrent use.
type Group struct {
	db    *bolt.DB
	queue *groupcommit.Queue[*call]
}

type call struct {
	fn   func(*bolt.Tx) error
	undo func()
	err  error // set by the commit, read after it ended
}

// New returns the group of db.
func New(db *bolt.DB) *Group {
	g := &Group{db: db}
	g.queue = groupcommit.New(g.commit)
	return g
}

// Queued returns how many calls wait for the next commit.
func (g *Group) Queued() int {
	return g.queue.Len()
}

// errOther marks a transaction rolled back for another call's error.
var errOther = errors.New("another call of the transaction failed")

// Update runs fn in a write transaction, shared with the Updates of other goroutines queued meanwhile, and returns
// once that transaction is committed (nil), or with fn's error or the commit's. The calls of a transaction run in
// the order they were queued, each seeing the changes of those before it, so the outcome is that of running them
// one after the other.
//
// fn may run more than once: when another call's fn fails, the transaction is rolled back and run again without
// it (the failing call then runs alone, so that its error is its own). After every rollback of a transaction fn
// ran in, undo (when not nil) is called: it must take back whatever fn did outside the transaction, so that fn can
// run again. A panic in fn is its error.
func (g *Group) Update(fn func(*bolt.Tx) error, undo func()) error {
	c := &call{fn: fn, undo: undo}
	g.queue.Wait(g.queue.Add(c))
	return c.err
}

// commit commits batch, setting every call's err. It leaves the calls queued meanwhile to the next commit.
func (g *Group) commit(batch []*call, _ func() []*call) {
	var alone []*call
	for len(batch) > 0 {
		failed, ran := -1, 0
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				ran = i + 1
				if err := run(c, tx); err != nil {
					failed = i
					if len(batch) > 1 {
						return errOther
					}
					return err
				}
			}
			return nil
		})
		if err == nil {
			break
		}
		for i := ran - 1; i >= 0; i-- {
			if batch[i].undo != nil {
				batch[i].undo()
			}
		}
		switch {
		case failed < 0: // the transaction or its commit failed: nothing of the batch is on disk
			for _, c := range batch {
				c.err = err
			}
			batch = nil
		case len(batch) == 1:
			batch[0].err = err
			batch = nil
		default:
			alone = append(alone, batch[failed])
			batch = append(batch[:failed:failed], batch[failed+1:]...)
		}
	}
	for _, c := range alone {
		ran := false
		c.err = g.db.Update(func(tx *bolt.Tx) error { ran = true; return run(c, tx) })
		if c.err != nil && ran && c.undo != nil {
			c.undo()
		}
	}
}

// run calls c.fn, turning a panic into its error.
func run(c *call, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in a bbolt transaction: %v", r)
		}
	}()
	return c.fn(tx)
}
