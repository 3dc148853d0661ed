// Package store persists noded's pod sandboxes and containers in bbolt and keeps an in-memory index of them, so
// that List and Status calls never touch the disk. Every change is committed to bbolt before the call that makes it
// returns, so callers write their intent (a record in a "creating" state) before they make side effects; changes
// made at once share commits (commit.go).
package store

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/groupcommit"
)

var (
	bucketSandboxes  = []byte("sandboxes")
	bucketContainers = []byte("containers")
)

// Store is the persistent set of sandboxes and containers. It is safe for concurrent use.
type Store struct {
	db *bolt.DB

	mu         sync.RWMutex
	sandboxes  map[string]*Sandbox
	containers map[string]*Container
	sbNames    map[string]string // sandbox name → id
	ctrNames   map[string]string // container name → id
	// podCtrs indexes the containers of each sandbox (sandbox id → container ids), so that a pod's containers are
	// found without a scan of every container.
	podCtrs map[string]map[string]struct{}

	// sbList and ctrList cache every record sorted by creation time, for the list calls kubelet makes every
	// second; any change of the set or of a record drops them (under mu), and the next reader rebuilds them while
	// it holds mu for reading, so a cached list is never older than the records.
	sbList  atomic.Pointer[[]*Sandbox]
	ctrList atomic.Pointer[[]*Container]

	commits *groupcommit.Queue[*write]
	// commitHook, when set (by tests), runs at the end of each commit's transaction; an error fails the commit.
	commitHook func(*bolt.Tx) error

	// Deferred writes (deferred.go): flushMu guards pending (container id → ticket of its latest deferred
	// change), the timer that commits them and closed.
	deferDelay time.Duration
	flushMu    sync.Mutex
	pending    map[string]groupcommit.Ticket
	flushTimer *time.Timer
	closed     bool
}

// Open loads every record of db into memory.
func Open(db *bolt.DB) (*Store, error) {
	s := &Store{
		db:         db,
		sandboxes:  map[string]*Sandbox{},
		containers: map[string]*Container{},
		sbNames:    map[string]string{},
		ctrNames:   map[string]string{},
		podCtrs:    map[string]map[string]struct{}{},
		deferDelay: DeferDelay,
		pending:    map[string]groupcommit.Ticket{},
	}
	s.commits = groupcommit.New(s.commit)
	err := db.Update(func(tx *bolt.Tx) error {
		if err := Schema.Ensure(tx); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketSandboxes, bucketContainers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketSandboxes).ForEach(func(k, v []byte) error {
			sb := &Sandbox{}
			if err := sb.decode(v); err != nil {
				return fmt.Errorf("sandbox %s: %w", k, err)
			}
			s.sandboxes[sb.ID] = sb
			s.sbNames[sb.Name] = sb.ID
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			c := &Container{}
			if err := c.decode(v); err != nil {
				return fmt.Errorf("container %s: %w", k, err)
			}
			s.containers[c.ID] = c
			s.ctrNames[c.Name] = c.ID
			s.indexContainer(c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return s, nil
}

// NewID returns a random 64-hex-digit ID.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the kernel's RNG does not fail on Linux ≥ 3.17
	}
	return hex.EncodeToString(b[:])
}

// ---- sandboxes ----

// AddSandbox stores a new sandbox, reserving its name. A name in use gives AlreadyExists naming the holder.
func (s *Store) AddSandbox(sb *Sandbox) error {
	w, err := s.addSandbox(sb)
	if err != nil {
		return err
	}
	return s.wait(w)
}

func (s *Store) addSandbox(sb *Sandbox) (*write, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.sbNames[sb.Name]; ok {
		return nil, errdefs.AlreadyExists("pod sandbox name %q is in use by %s", sb.Name, id)
	}
	if _, ok := s.sandboxes[sb.ID]; ok {
		return nil, errdefs.AlreadyExists("pod sandbox %s exists", sb.ID)
	}
	w, err := stagePut(bucketSandboxes, sb.ID, sb)
	if err != nil {
		return nil, err
	}
	cp := *sb
	s.sandboxes[sb.ID] = &cp
	s.sbNames[sb.Name] = sb.ID
	s.sbList.Store(nil)
	w.undo = func() {
		delete(s.sandboxes, cp.ID)
		delete(s.sbNames, cp.Name)
	}
	s.enqueue(w)
	return w, nil
}

// UpdateSandbox applies fn to a copy of the sandbox and persists the result. A state change the transition table
// does not allow is FailedPrecondition and changes nothing.
func (s *Store) UpdateSandbox(id string, fn func(*Sandbox) error) (Sandbox, error) {
	prev, next, w, err := s.updateSandbox(id, fn)
	if err != nil {
		return prev, err
	}
	if err := s.wait(w); err != nil {
		return prev, err
	}
	return next, nil
}

func (s *Store) updateSandbox(id string, fn func(*Sandbox) error) (prev, next Sandbox, w *write, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.sandboxes[id]
	if !ok {
		return Sandbox{}, Sandbox{}, nil, errdefs.NotFound("pod sandbox %s not found", id)
	}
	cp := *cur
	if err := fn(&cp); err != nil {
		return *cur, Sandbox{}, nil, err
	}
	if err := CheckSandboxTransition(id, cur.State, cp.State); err != nil {
		return *cur, Sandbox{}, nil, err
	}
	if w, err = stagePut(bucketSandboxes, id, &cp); err != nil {
		return *cur, Sandbox{}, nil, err
	}
	s.sandboxes[id] = &cp
	s.sbList.Store(nil)
	w.undo = func() { s.sandboxes[id] = cur }
	s.enqueue(w)
	return *cur, cp, w, nil
}

// DeleteSandbox removes the sandbox's record and frees its name. Unknown IDs are not an error.
func (s *Store) DeleteSandbox(id string) error {
	w, err := s.deleteSandbox(id)
	if err != nil || w == nil {
		return err
	}
	return s.wait(w)
}

func (s *Store) deleteSandbox(id string) (*write, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[id]
	if !ok {
		return nil, nil
	}
	w, err := stage(bucketSandboxes, id, nil, "delete sandbox "+id)
	if err != nil {
		return nil, err
	}
	delete(s.sandboxes, id)
	heldName := s.sbNames[sb.Name] == id
	if heldName {
		delete(s.sbNames, sb.Name)
	}
	s.sbList.Store(nil)
	w.undo = func() {
		s.sandboxes[id] = sb
		if heldName {
			s.sbNames[sb.Name] = id
		}
	}
	s.enqueue(w)
	return w, nil
}

// Sandbox returns the sandbox with the given ID or unique ID prefix.
func (s *Store) Sandbox(id string) (Sandbox, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	full, err := resolve(id, s.sandboxes, "pod sandbox")
	if err != nil {
		return Sandbox{}, err
	}
	return *s.sandboxes[full], nil
}

// SandboxByName returns the sandbox holding name.
func (s *Store) SandboxByName(name string) (Sandbox, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.sbNames[name]
	if !ok {
		return Sandbox{}, false
	}
	return *s.sandboxes[id], true
}

// Sandboxes returns every sandbox, ordered by creation time.
func (s *Store) Sandboxes() []Sandbox {
	recs := s.SandboxRecords()
	out := make([]Sandbox, len(recs))
	for i, sb := range recs {
		out[i] = *sb
	}
	return out
}

// SandboxRecords is Sandboxes without the copies, for hot read-only paths (ListPodSandbox, stats): the records
// and the slice are the store's own, shared and never modified once stored (updates replace them), so callers
// must modify neither. Sorted by creation time.
func (s *Store) SandboxRecords() []*Sandbox {
	if l := s.sbList.Load(); l != nil {
		return *l
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if l := s.sbList.Load(); l != nil {
		return *l
	}
	out := make([]*Sandbox, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, b *Sandbox) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	// Stored under the read lock: a writer, which drops the list under the write lock, cannot run meanwhile.
	s.sbList.Store(&out)
	return out
}

// ---- containers ----

// AddContainer stores a new container, reserving its name; its sandbox must exist.
func (s *Store) AddContainer(c *Container) error {
	w, err := s.addContainer(c)
	if err != nil {
		return err
	}
	return s.wait(w)
}

func (s *Store) addContainer(c *Container) (*write, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sandboxes[c.SandboxID]; !ok {
		return nil, errdefs.NotFound("pod sandbox %s not found", c.SandboxID)
	}
	if id, ok := s.ctrNames[c.Name]; ok {
		return nil, errdefs.AlreadyExists("container name %q is in use by %s", c.Name, id)
	}
	if _, ok := s.containers[c.ID]; ok {
		return nil, errdefs.AlreadyExists("container %s exists", c.ID)
	}
	w, err := stagePut(bucketContainers, c.ID, c)
	if err != nil {
		return nil, err
	}
	cp := *c
	s.containers[c.ID] = &cp
	s.ctrNames[c.Name] = c.ID
	s.indexContainer(&cp)
	s.ctrList.Store(nil)
	w.undo = func() {
		delete(s.containers, cp.ID)
		delete(s.ctrNames, cp.Name)
		s.unindexContainer(&cp)
	}
	s.enqueue(w)
	return w, nil
}

// UpdateContainer applies fn to a copy of the container and persists the result.
//
// A state change the transition table does not allow is FailedPrecondition and changes nothing.
func (s *Store) UpdateContainer(id string, fn func(*Container) error) (Container, error) {
	prev, next, w, err := s.updateContainer(id, fn)
	if err != nil {
		return prev, err
	}
	if err := s.wait(w); err != nil {
		return prev, err
	}
	return next, nil
}

func (s *Store) updateContainer(id string, fn func(*Container) error) (prev, next Container, w *write, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.containers[id]
	if !ok {
		return Container{}, Container{}, nil, errdefs.NotFound("container %s not found", id)
	}
	cp := *cur
	if err := fn(&cp); err != nil {
		return *cur, Container{}, nil, err
	}
	if err := CheckContainerTransition(id, cur.State, cp.State); err != nil {
		return *cur, Container{}, nil, err
	}
	if cp.SandboxID != cur.SandboxID {
		return *cur, Container{}, nil, errdefs.InvalidArgument("container %s cannot move from pod sandbox %s to %s", id, cur.SandboxID, cp.SandboxID)
	}
	if w, err = stagePut(bucketContainers, id, &cp); err != nil {
		return *cur, Container{}, nil, err
	}
	s.containers[id] = &cp
	s.ctrList.Store(nil)
	w.undo = func() { s.containers[id] = cur }
	s.enqueue(w)
	return *cur, cp, w, nil
}

// DeleteContainer removes the container's record. Unknown IDs are not an error.
func (s *Store) DeleteContainer(id string) error {
	w, err := s.deleteContainer(id)
	if err != nil || w == nil {
		return err
	}
	return s.wait(w)
}

func (s *Store) deleteContainer(id string) (*write, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, nil
	}
	w, err := stage(bucketContainers, id, nil, "delete container "+id)
	if err != nil {
		return nil, err
	}
	delete(s.containers, id)
	heldName := s.ctrNames[c.Name] == id
	if heldName {
		delete(s.ctrNames, c.Name)
	}
	s.unindexContainer(c)
	s.ctrList.Store(nil)
	w.undo = func() {
		s.containers[id] = c
		if heldName {
			s.ctrNames[c.Name] = id
		}
		s.indexContainer(c)
	}
	s.enqueue(w)
	return w, nil
}

// Container returns the container with the given ID or unique ID prefix.
func (s *Store) Container(id string) (Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	full, err := resolve(id, s.containers, "container")
	if err != nil {
		return Container{}, err
	}
	return *s.containers[full], nil
}

// ContainerRecord is Container without the copy, for hot read-only paths: the record is the store's own, shared
// and never modified once stored (see ContainerRecords), so callers must not modify it.
func (s *Store) ContainerRecord(id string) (*Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	full, err := resolve(id, s.containers, "container")
	if err != nil {
		return nil, err
	}
	return s.containers[full], nil
}

// ContainerByName returns the container holding name.
func (s *Store) ContainerByName(name string) (Container, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.ctrNames[name]
	if !ok {
		return Container{}, false
	}
	return *s.containers[id], true
}

// Containers returns every container, ordered by creation time; a non-empty sandboxID keeps that pod's only.
func (s *Store) Containers(sandboxID string) []Container {
	recs := s.ContainerRecords(sandboxID)
	out := make([]Container, len(recs))
	for i, c := range recs {
		out[i] = *c
	}
	return out
}

// ContainerRecords is Containers without the copies, for hot read-only paths (ListContainers, stats): the
// records (and, for every container, the slice) are the store's own, shared and never modified once stored
// (updates replace them), so callers must modify neither. Sorted by creation time.
func (s *Store) ContainerRecords(sandboxID string) []*Container {
	if sandboxID != "" {
		s.mu.RLock()
		ids := s.podCtrs[sandboxID]
		out := make([]*Container, 0, len(ids))
		for id := range ids {
			out = append(out, s.containers[id])
		}
		s.mu.RUnlock()
		slices.SortFunc(out, compareContainers)
		return out
	}
	if l := s.ctrList.Load(); l != nil {
		return *l
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if l := s.ctrList.Load(); l != nil {
		return *l
	}
	out := make([]*Container, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	slices.SortFunc(out, compareContainers)
	// Stored under the read lock: a writer, which drops the list under the write lock, cannot run meanwhile.
	s.ctrList.Store(&out)
	return out
}

func compareContainers(a, b *Container) int {
	return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// indexContainer adds c to its sandbox's containers; the caller holds mu for writing.
func (s *Store) indexContainer(c *Container) {
	ids := s.podCtrs[c.SandboxID]
	if ids == nil {
		ids = map[string]struct{}{}
		s.podCtrs[c.SandboxID] = ids
	}
	ids[c.ID] = struct{}{}
}

// unindexContainer removes c from its sandbox's containers; the caller holds mu for writing.
func (s *Store) unindexContainer(c *Container) {
	if ids := s.podCtrs[c.SandboxID]; ids != nil {
		delete(ids, c.ID)
		if len(ids) == 0 {
			delete(s.podCtrs, c.SandboxID)
		}
	}
}

// ---- helpers ----

type record interface{ encode() ([]byte, error) }

// stagePut encodes r as the new value of id in bucket, a change not yet queued.
func stagePut(bucket []byte, id string, r record) (*write, error) {
	what := fmt.Sprintf("persist %s %s", bucket, id)
	data, err := r.encode()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return stage(bucket, id, data, what)
}

func resolve[T any](id string, m map[string]T, what string) (string, error) {
	if id == "" {
		return "", errdefs.InvalidArgument("%s ID must not be empty", what)
	}
	if _, ok := m[id]; ok {
		return id, nil
	}
	match := ""
	for k := range m {
		if strings.HasPrefix(k, id) {
			if match != "" {
				return "", errdefs.InvalidArgument("%s ID prefix %q is ambiguous", what, id)
			}
			match = k
		}
	}
	if match == "" {
		return "", errdefs.NotFound("%s %q not found", what, id)
	}
	return match, nil
}

// marshalProto encodes a proto message for embedding in a JSON record; nil gives nil.
func marshalProto(m proto.Message) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	return proto.Marshal(m)
}

func unmarshalSandboxConfig(b []byte) (*runtimeapi.PodSandboxConfig, error) {
	c := &runtimeapi.PodSandboxConfig{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

func unmarshalContainerConfig(b []byte) (*runtimeapi.ContainerConfig, error) {
	c := &runtimeapi.ContainerConfig{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, err
	}
	return c, nil
}
