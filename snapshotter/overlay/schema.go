package overlay

import "github.com/noded/noded/internal/boltschema"

// Schema versions metadata.db. Version 1 is the first layout: bucket "snapshots" mapping a snapshot key to its
// JSON record, with the bucket's sequence as the id counter. Add a migration and raise Current when that
// layout changes; New applies it.
var Schema = boltschema.Schema{Name: "snapshots", Current: 1}
