package nodestats

// Disk is what statfs says of a file system.
type Disk struct {
	Blocks, Available  uint64 // in blocks; Available is what an unprivileged writer may use
	Inodes, FreeInodes uint64
}
