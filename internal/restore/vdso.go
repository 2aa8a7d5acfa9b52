package restore

import (
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// kernelArea tells whether pagemap entry e lies in the task's vDSO or vvar
// area. A dump holds the vDSO's pages (CRIU's restore reads the dumped
// vDSO's symbols); gockpt's restore moves the running kernel's vDSO into
// place instead and writes nothing there.
func kernelArea(t *Task, e pagemap.Entry) bool {
	for _, v := range t.MM.GetVmas() {
		if v.GetStatus()&(images.VMAAreaVDSO|images.VMAAreaVVAR) != 0 && e.Vaddr >= v.GetStart() && e.Vaddr < v.GetEnd() {
			return true
		}
	}
	return false
}
