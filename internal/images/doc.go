// Package images reads and writes CRIU-compatible image directories.
//
// An image file starts with one or two u32 magics (see Kind), then holds
// entries, each a little-endian u32 size and a protobuf message of that many
// bytes. Some kinds carry raw bytes after an entry (pipe data, socket queues,
// TCP queues, ghost file content); raw kinds (pages-N.img) are data only.
// Reader and Writer are the only code that knows this framing; the rest of
// gockpt deals in messages. Package pagemap builds page lookup on top.
//
// Readers never trust sizes found in a file: every size is capped, memory
// is allocated as data actually arrives, and every error names the file and
// the byte offset where the damage is. Readers and writers are not safe for
// concurrent use.
package images
