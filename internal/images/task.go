package images

// Task states of task_core_entry.task_state, as CRIU numbers them (compel's
// task-state.h, shared with CRIU's pid.h): declared here once for dump,
// restore and the image tools.
const (
	TaskAlive   = 0x1 // neither stopped by job control nor dead
	TaskDead    = 0x2 // a zombie: its core holds only its exit code
	TaskStopped = 0x3 // in group-stop (job control); stop_signo says by which signal
	// TaskZombie is compel's state of a zombie it found when seizing;
	// CRIU writes TaskDead into the image instead, but crit names both.
	TaskZombie = 0x6
)
