package dump

import (
	"fmt"
	"io"
	"os"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/pageserver"
)

// connectPageServer connects to the page server, before the tree is
// touched: a server that is not there, or refuses, fails the dump first.
// An incremental dump also makes sure the server holds the previous
// iteration, as the pages left there will be listed as in its parent.
func (d *dumper) connectPageServer() error {
	o := d.opts
	if o.PageServer == "" {
		return nil
	}
	c, err := pageserver.Dial(o.PageServer, o.PageServerTLS)
	if err != nil {
		return err
	}
	if o.Compress {
		if err := c.Compress(pageserver.CompressSent); err != nil {
			return err
		}
	}
	if o.PrevImagesDir != "" {
		has, err := c.HasParent(pageserver.Task(o.Pid))
		if err != nil {
			c.Abort()
			return err
		}
		if !has {
			c.Abort()
			return fmt.Errorf("page server %s has no parent images for task %d, though --prev-images-dir %s is given: start the page server with --prev-images-dir naming the images it received in the previous iteration", o.PageServer, o.Pid, o.PrevImagesDir)
		}
	}
	d.ps = c
	// Memory objects of fds (memfds) go there too.
	d.files.ShmemPages = func(_ *images.Dir, shmid uint64, _ uint32) (files.PageWriter, error) {
		s, _, err := d.ps.Open(pageserver.Shmem(shmid))
		if err != nil {
			return nil, err
		}
		return streamWriter{s}, nil
	}
	log.Infof("sending pages to the page server at %s", o.PageServer)
	return nil
}

// streamWriter adds whole runs, with their data, to a page server stream.
type streamWriter struct{ s *pageserver.Stream }

func (w streamWriter) Add(e pagemap.Entry, data []byte) error {
	if err := w.s.Add(e); err != nil {
		return err
	}
	_, err := w.s.Write(data)
	return err
}

func (w streamWriter) Close() error { return w.s.Close() }

// closePageServer ends the session: only when the server confirms it
// wrote every page may the tree be let go (or killed).
func (d *dumper) closePageServer() error {
	if d.ps == nil {
		return nil
	}
	c := d.ps
	d.ps = nil
	if err := c.Close(); err != nil {
		return err
	}
	if c.Compressed() != 0 {
		wire, _ := c.Wire()
		log.Infof("page server %s: %d MiB of pages sent, compressed (zstd) to %d MiB on the wire", c.Peer(), c.Sent>>20, wire>>20)
		return nil
	}
	log.Infof("page server %s: %d MiB of pages sent", c.Peer(), c.Sent>>20)
	return nil
}

// abortPageServer drops the session of a failed dump: the server keeps
// nothing of it.
func (d *dumper) abortPageServer() {
	if d.ps != nil {
		d.ps.Abort()
		d.ps = nil
	}
}

// pageDest is where the pages of one pagemap go: a pages image here, or a
// stream to the page server.
type pageDest struct {
	id     uint32 // pages-ID.img, when local
	f      *os.File
	stream *pageserver.Stream
}

// openPages starts the pages of target t. needParent: runs will be listed
// as in the parent images.
func (d *dumper) openPages(t pageserver.Target, needParent bool) (pageDest, error) {
	if d.ps == nil {
		d.pages++
		f, err := d.dir.CreateFile(images.PagesFile(d.pages))
		return pageDest{id: d.pages, f: f}, err
	}
	s, has, err := d.ps.Open(t)
	if err != nil {
		return pageDest{}, err
	}
	if needParent && !has {
		s.Close()
		return pageDest{}, fmt.Errorf("page server %s has no parent images for %s, whose unchanged pages this incremental dump leaves there: start the page server with --prev-images-dir naming the images it received in the previous iteration", d.ps.Peer(), t)
	}
	return pageDest{stream: s}, nil
}

// writer is where the page data goes.
func (p pageDest) writer() io.Writer {
	if p.stream != nil {
		return p.stream
	}
	return p.f
}

// abandon drops a destination whose pages will not be finished.
func (p pageDest) abandon() {
	if p.f != nil {
		p.f.Close()
	}
}

// finish completes the pages and writes the pagemap (here, or as the
// record of what was sent: the next iteration needs to know it).
func (p pageDest) finish(d *dumper, pid int, out *pagemapOut) error {
	if p.stream != nil {
		if err := p.stream.Close(); err != nil {
			return err
		}
		return pagemap.WriteNamed(d.dir, images.SentPagemapFile(pid), 0, out.entries)
	}
	if err := p.f.Close(); err != nil {
		return err
	}
	return out.write(d.dir, pid, p.id)
}
