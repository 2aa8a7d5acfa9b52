package restore

import "github.com/gockpt/gockpt/internal/lsm"

// stubWithoutAuditedCheckpointRestore leaves CAP_CHECKPOINT_RESTORE out of
// the stub's effective set where lsm.LeaveOutCheckpointRestore says so.
// Every task is cloned from the stub and keeps its credentials until pass 2
// gives it the image's, so the clone3 set_tid and PR_SET_MM_MAP calls made
// in the tasks then get through CAP_SYS_ADMIN without the SELinux denial of
// CAP_CHECKPOINT_RESTORE being logged first. The bit stays permitted: pass 2
// can give it back to tasks whose image has it.
func (rs *restorer) stubWithoutAuditedCheckpointRestore(r *remote) error {
	label, err := rs.opts.LSM.ProcessLabel(r.pid)
	if err != nil || label == "" {
		return nil // nothing to go on: keep the capability, as always
	}
	inh, prm, eff, err := rs.capget(r)
	if err != nil {
		return err
	}
	if !lsm.LeaveOutCheckpointRestore(label, eff) {
		return nil
	}
	return rs.capset(r, inh, prm, eff&^(1<<lsm.CapCheckpointRestore))
}
