package image

import "github.com/noded/noded/internal/boltschema"

// Schema versions the image part of the shared database. Version 1 is the first layout: bucket "images" with
// sub-buckets "records" (image ID → JSON Image) and "names" (reference → image ID). Add a migration and raise
// Current when that layout changes; New applies it.
var Schema = boltschema.Schema{Name: "images", Current: 1}
