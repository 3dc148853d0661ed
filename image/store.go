package image

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image/reference"
	bolt "go.etcd.io/bbolt"
)

// Buckets: everything lives under the top-level bucket "images" of the shared database.
var (
	bucketImages  = []byte("images")
	bucketRecords = []byte("records") // image ID -> JSON Image
	bucketNames   = []byte("names")   // normalised tag or digest reference -> image ID
)

// metaStore keeps image records in bbolt.
type metaStore struct {
	db *bolt.DB
}

func newMetaStore(db *bolt.DB) (*metaStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		if err := Schema.Ensure(tx); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketImages)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(bucketRecords); err != nil {
			return err
		}
		_, err = b.CreateBucketIfNotExists(bucketNames)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image metadata: %w", err)
	}
	return &metaStore{db: db}, nil
}

func buckets(tx *bolt.Tx) (records, names *bolt.Bucket) {
	b := tx.Bucket(bucketImages)
	return b.Bucket(bucketRecords), b.Bucket(bucketNames)
}

func getRecord(records *bolt.Bucket, id string) (*Image, error) {
	v := records.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var img Image
	if err := json.Unmarshal(v, &img); err != nil {
		return nil, fmt.Errorf("image record %s: %w", id, err)
	}
	return &img, nil
}

func putRecord(records *bolt.Bucket, img *Image) error {
	v, err := json.Marshal(img)
	if err != nil {
		return err
	}
	return records.Put([]byte(img.ID), v)
}

// commit writes img under its ID in one transaction, pointing names (normalised tag and digest references) at
// it. A name that pointed at another image is removed from that image. Names already on the record are kept;
// Pinned is sticky.
func (m *metaStore) commit(img *Image, names []string) (Image, error) {
	var out Image
	err := m.db.Update(func(tx *bolt.Tx) error {
		records, nb := buckets(tx)
		old, err := getRecord(records, img.ID)
		if err != nil {
			return err
		}
		rec := *img
		if old != nil {
			rec.RepoTags, rec.RepoDigests = old.RepoTags, old.RepoDigests
			rec.Pinned = rec.Pinned || old.Pinned
			rec.Blobs = union(old.Blobs, rec.Blobs)
		}
		for _, n := range names {
			prev := string(nb.Get([]byte(n)))
			if prev != "" && prev != img.ID {
				if err := dropName(records, prev, n); err != nil {
					return err
				}
			}
			if err := nb.Put([]byte(n), []byte(img.ID)); err != nil {
				return err
			}
			addName(&rec, n)
		}
		if err := putRecord(records, &rec); err != nil {
			return err
		}
		out = rec
		return nil
	})
	if err != nil {
		return Image{}, fmt.Errorf("record image %s: %w", img.ID, err)
	}
	return out, nil
}

func isDigestName(n string) bool { return strings.Contains(n, "@") }

func addName(img *Image, n string) {
	list := &img.RepoTags
	if isDigestName(n) {
		list = &img.RepoDigests
	}
	if !slices.Contains(*list, n) {
		*list = append(*list, n)
		slices.Sort(*list)
	}
}

// dropName removes name n from the record of image id. The image stays (it keeps its digest references).
func dropName(records *bolt.Bucket, id, n string) error {
	rec, err := getRecord(records, id)
	if err != nil || rec == nil {
		return err
	}
	rec.RepoTags = slices.DeleteFunc(rec.RepoTags, func(s string) bool { return s == n })
	rec.RepoDigests = slices.DeleteFunc(rec.RepoDigests, func(s string) bool { return s == n })
	return putRecord(records, rec)
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// resolve finds the image ref names: a full ID ("sha256:<hex>" or the hex alone), a tag or digest reference
// (normalised), or a unique prefix of an ID ("sha256:" optional). NotFound when nothing matches,
// InvalidArgument for an ambiguous prefix or an empty ref.
func (m *metaStore) resolve(ref string) (Image, error) {
	if ref == "" {
		return Image{}, errdefs.InvalidArgument("empty image reference")
	}
	var out *Image
	err := m.db.View(func(tx *bolt.Tx) error {
		records, names := buckets(tx)
		if reference.IsID(ref) {
			id := ref
			if !strings.HasPrefix(id, "sha256:") {
				id = "sha256:" + id
			}
			img, err := getRecord(records, id)
			out = img
			return err
		}
		if n, err := reference.Normalize(ref); err == nil {
			if id := names.Get([]byte(n)); id != nil {
				img, err := getRecord(records, string(id))
				out = img
				return err
			}
		}
		prefix := strings.TrimPrefix(ref, "sha256:")
		if !isHex(prefix) {
			return nil
		}
		full := []byte("sha256:" + prefix)
		c := records.Cursor()
		var match []byte
		for k, _ := c.Seek(full); k != nil && strings.HasPrefix(string(k), string(full)); k, _ = c.Next() {
			if match != nil {
				return errdefs.InvalidArgument("image ID prefix %q is ambiguous", ref)
			}
			match = slices.Clone(k)
		}
		if match == nil {
			return nil
		}
		img, err := getRecord(records, string(match))
		out = img
		return err
	})
	if err != nil {
		return Image{}, err
	}
	if out == nil {
		return Image{}, errdefs.NotFound("image %q not found", ref)
	}
	return *out, nil
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (m *metaStore) list() ([]Image, error) {
	var out []Image
	err := m.db.View(func(tx *bolt.Tx) error {
		records, _ := buckets(tx)
		return records.ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image record %s: %w", k, err)
			}
			out = append(out, img)
			return nil
		})
	})
	return out, err
}

// remove deletes the image id and all its names. It returns NotFound when there is no such image.
func (m *metaStore) remove(id string) error {
	return m.db.Update(func(tx *bolt.Tx) error {
		records, names := buckets(tx)
		rec, err := getRecord(records, id)
		if err != nil {
			return err
		}
		if rec == nil {
			return errdefs.NotFound("image %s not found", id)
		}
		for _, n := range append(slices.Clone(rec.RepoTags), rec.RepoDigests...) {
			if string(names.Get([]byte(n))) == id {
				if err := names.Delete([]byte(n)); err != nil {
					return err
				}
			}
		}
		return records.Delete([]byte(id))
	})
}

func (m *metaStore) setPinned(id string, pinned bool) error {
	return m.db.Update(func(tx *bolt.Tx) error {
		records, _ := buckets(tx)
		rec, err := getRecord(records, id)
		if err != nil {
			return err
		}
		if rec == nil {
			return errdefs.NotFound("image %s not found", id)
		}
		rec.Pinned = pinned
		return putRecord(records, rec)
	})
}
