package dump

import (
	"os"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

// networkLockSkip is CRIU's NETWORK_LOCK_SKIP: no network lock was taken.
const networkLockSkip = 2

// dumper returns the ids of the dumping process itself, numbered with the
// tree's: the inventory's root_ids, as CRIU writes them. A restorer compares
// each task's ids with its parent's, and the root task's with these: equal
// namespace ids mean "stays in the restorer's namespace", a different one
// means "cloned into a new namespace", and an fd table (files_id) equal to
// the parent's means the two share it (CLONE_FILES), which the root task
// never can with its restorer (CRIU rejects such a set as "Image corruption
// on kIDs data"). gockpt shares no mm, fd table, fs or signal handlers with
// any task it dumps, so those get ids of their own.
func (k *kobjIDs) dumper() (*pb.TaskKobjIdsEntry, error) {
	e := &pb.TaskKobjIdsEntry{
		VmId:      proto.Uint32(k.id()),
		FilesId:   proto.Uint32(k.id()),
		FsId:      proto.Uint32(k.id()),
		SighandId: proto.Uint32(k.id()),
	}
	if err := k.nsOf(os.Getpid(), e); err != nil {
		return nil, err
	}
	return e, nil
}
